"""The paper's figures as tables: which series each shows and how each is measured.

A series of figures 5, 7, 8 and 9 is one server configuration (repro.configs.CONFIGS), measured
with the paper's client (round-robin requests, 10 warm-up rounds, mean and p99 of 10), possibly
with a background training job, or a PyTorch peer, or a point the server cannot measure (then
`missing` says why and the CSV and the page say "not available"). A (config, background) pair is
measured once per run and shown in every figure that lists it. Figure 6 is repro.fig6.
"""
from collections import namedtuple

# kind: "server" (a pipeswitchd configuration), "torch" (a PyTorch peer: ready, copy, cold),
# "missing" (not measurable here; `missing` is the reason).
Series = namedtuple("Series", "key label kind config background missing")


def server(key, label, config=None, background=None):
    return Series(key, label, "server", config or key, background, None)


def torch(key, label, mode):
    return Series(key, label, "torch", mode, None, None)


def missing(key, label, why):
    return Series(key, label, "missing", None, None, why)


Figure = namedtuple("Figure", "key title what series log_scale")

FIGURES = [
    Figure("fig5", "Figure 5: total latency",
           "Client-measured latency of one inference request (batch 8) whose model is not on the "
           "GPU, arriving after another model's request or while a training job runs (the paper's "
           "case), against the ready model (already on the GPU, the lower bound), co-running with "
           "training (the paper used NVIDIA MPS) and killing and restarting a process. PyTorch eager peers on the same machine: the ready model, "
           "copy-the-whole-model-then-compute, and a cold process.",
           [server("ready", "ready model (lower bound)"),
            server("pipeswitch", "PipeSwitch, switching from another model"),
            server("pipeswitch-train", "PipeSwitch, switching from training (TRAIN job active)",
                   config="pipeswitch", background="training"),
            server("co-run", "co-running training and inference (--training co-run, model resident)",
                   config="co-run", background="training"),
            server("kill-restart", "stop-and-start: kill and restart a process"),
            torch("torch-ready", "PyTorch eager, ready model", "ready"),
            torch("torch-copy", "PyTorch eager, copy whole model then compute", "copy"),
            torch("torch-cold", "PyTorch, cold process (start to first result)", "cold")],
           True),
    Figure("fig7", "Figure 7: pipelining and grouping",
           "How the weights are split into copy groups: PipeSwitch's timed grouping (the optimal, "
           "block and per-layer groupings each timed as a switch at registration, the fastest "
           "kept), the same with embedding tables copied too (the original copied every weight; "
           "ours reads BERT's word embeddings from pinned host memory), the optimal grouping "
           "predicted from measured per-layer times and link, the original's hand-written block "
           "groups, one group per layer, one whole-model copy before compute, and per-layer "
           "copies without pipelining.",
           [server("pipeswitch", "PipeSwitch (timed groups, pipelined)"),
            server("copy-tables", "timed groups, embedding tables copied too (--host-read off)"),
            server("optimal", "optimal groups as predicted (--grouping optimal)"),
            server("blocks", "the original's block groups, pipelined"),
            server("per-layer", "per-layer groups, pipelined"),
            server("whole", "whole model first, then compute (--grouping whole)"),
            server("per-layer-no-pipeline", "per-layer groups, every copy before compute "
                   "(--pipelining off)")],
           False),
    Figure("fig8", "Figure 8: memory management",
           "Where the weights live and how device memory is obtained: the pool with pinned host "
           "weights (PipeSwitch), device memory allocated and freed per switch (no pool), pageable "
           "host weights, and CUDA managed (unified) memory.",
           [server("pipeswitch", "PipeSwitch (pool, pinned host weights)"),
            server("no-pool", "no unified memory management (cuMemAlloc/cuMemFree per switch)"),
            server("pageable", "no pinned memory (pageable host weights)"),
            server("managed", "CUDA managed (unified) memory"),
            missing("no-ipc", "no IPC optimisation (handle per group)",
                    "not applicable (one server process: no IPC handles to exchange)")],
           False),
    Figure("fig9", "Figure 9: switching mechanisms",
           "How the server gets from one task to the next: PipeSwitch's prepared workers (here: "
           "one process with every model registered, weights pinned, plans built), stopping and "
           "copying the whole model before computing in the same process, and a fresh process per "
           "request (kill and restart).",
           [server("pipeswitch", "PipeSwitch (active-standby)"),
            server("stop-and-start", "one process: stop, whole-model copy, run"),
            server("kill-restart", "two processes: kill and restart"),
            torch("torch-copy", "PyTorch eager, copy whole model then compute", "copy"),
            torch("torch-cold", "PyTorch, cold process (start to first result)", "cold")],
           True),
]

FIGURE_KEYS = ["fig5", "fig6", "fig7", "fig8", "fig9"]


def figure(key):
    return next(f for f in FIGURES if f.key == key)


def server_points(figure_keys):
    """The distinct (config, background) pairs the chosen figures need, in first-use order."""
    seen = []
    for f in FIGURES:
        if f.key not in figure_keys:
            continue
        for s in f.series:
            if s.kind == "server" and (s.config, s.background) not in seen:
                seen.append((s.config, s.background))
    return seen


def torch_modes(figure_keys):
    modes = []
    for f in FIGURES:
        if f.key in figure_keys:
            modes += [s.config for s in f.series if s.kind == "torch" and s.config not in modes]
    return modes
