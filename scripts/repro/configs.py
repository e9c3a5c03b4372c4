"""Server configurations: the pipeswitchd flags of each policy measured by the benchmarks.
scripts/bench_switch.py and the reproduction harness both take them from here."""

CONFIGS = {
    "ready": ["--policy", "ready"],
    # PipeSwitch as shipped: the groupings timed as switches at registration, the fastest kept.
    "pipeswitch": ["--policy", "pipeswitch", "--grouping", "timed"],
    "optimal": ["--policy", "pipeswitch", "--grouping", "optimal"],
    "blocks": ["--policy", "pipeswitch", "--grouping", "blocks"],
    "per-layer": ["--policy", "pipeswitch", "--grouping", "per-layer"],
    "whole": ["--policy", "pipeswitch", "--grouping", "whole"],
    "per-layer-no-pipeline": ["--policy", "pipeswitch", "--grouping", "per-layer",
                              "--pipelining", "off"],
    "stop-and-start": ["--policy", "stop-and-start"],
    "no-pool": ["--policy", "no-pool"],
    "pageable": ["--policy", "pageable"],
    "managed": ["--policy", "managed"],
    "cache": ["--policy", "cache"],
    "kill-restart": ["--policy", "kill-restart"],
    "ready-enqueue": ["--policy", "ready", "--graphs", "off"],
    "pipeswitch-enqueue": ["--policy", "pipeswitch", "--grouping", "timed", "--graphs", "off"],
    # The original's transmission: every weight copied, embedding tables included (ours reads
    # them from pinned host memory: models/gpu/host_read.h).
    "copy-tables": ["--policy", "pipeswitch", "--grouping", "timed", "--host-read", "off"],
    # Training beside inference at a lower priority instead of pausing for it (the paper's MPS
    # co-run); a server without the --training flag runs the default (yield) instead.
    "co-run": ["--policy", "ready", "--training", "co-run"],
}

# kill-restart takes about a second per request on an H200: fewer (warm-up, measured) requests.
FEW_REQUESTS = {"kill-restart": (1, 5)}


def server_flags(config, help_text):
    """CONFIGS[config], less the flags this pipeswitchd's --help does not list (--training
    before the training engine existed)."""
    flags = list(CONFIGS[config])
    out = []
    i = 0
    while i < len(flags):
        if flags[i].startswith("--") and flags[i] not in help_text:
            i += 2
            continue
        out.append(flags[i])
        i += 1
    return out
