"""Server configurations: the pipeswitchd flags of each policy measured by the benchmarks.
scripts/bench_switch.py and the reproduction harness both take them from here."""

CONFIGS = {
    "ready": ["--policy", "ready"],
    "pipeswitch": ["--policy", "pipeswitch", "--grouping", "optimal"],
    "blocks": ["--policy", "pipeswitch", "--grouping", "blocks"],
    "per-layer": ["--policy", "pipeswitch", "--grouping", "per-layer"],
    "whole": ["--policy", "pipeswitch", "--grouping", "whole"],
    "stop-and-start": ["--policy", "stop-and-start"],
    "no-pool": ["--policy", "no-pool"],
    "pageable": ["--policy", "pageable"],
    "managed": ["--policy", "managed"],
    "cache": ["--policy", "cache"],
    "kill-restart": ["--policy", "kill-restart"],
    "ready-enqueue": ["--policy", "ready", "--graphs", "off"],
    "pipeswitch-enqueue": ["--policy", "pipeswitch", "--grouping", "optimal", "--graphs", "off"],
}

# kill-restart takes about a second per request on an H200: fewer (warm-up, measured) requests.
FEW_REQUESTS = {"kill-restart": (1, 5)}
