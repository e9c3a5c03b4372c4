"""The original's results (V100 16 GB, PCIe 3.0 x16, client-measured ms), exactly as
/work/shared/PIPESWITCH.md ("Results of the original") states them. Only numbers that document
states; keys are (figure, series), values per model. Labelled "original (V100, paper)" wherever
they are shown."""

LABEL = "original (V100, paper)"
MODELS = ("resnet152", "inception_v3", "bert_base")


NUMBERS = {
    # Fig 5: total latency
    ("fig5", "ready"): (37.1, 40.5, 39.3),
    ("fig5", "pipeswitch"): (43.5, 40.6, 53.9),
    ("fig5", "pipeswitch-train"): (43.5, 40.6, 53.9),   # the same point: the paper switched from training
    ("fig5", "co-run"): (659, 464, 522),            # NVIDIA MPS, training and inference co-run
    ("fig5", "kill-restart"): (5678, 6276, 7243),   # stop-and-start: kill and restart a process
    # Fig 7: pipelining ablation
    ("fig7", "pipeswitch"): (41.1, 39.5, 53.7),
    ("fig7", "per-layer"): (76.4, 53.7, 70.3),
    ("fig7", "whole"): (60.1, 50.4, 83.2),
    ("fig7", "per-layer-no-pipeline"): (86.5, 58.1, 89.9),
    # Fig 8: memory ablation
    ("fig8", "pipeswitch"): (42.4, 41.2, 53.8),
    ("fig8", "no-pool"): (68.6, 62.0, 66.4),         # no unified memory management
    ("fig8", "no-ipc"): (95.3, 65.8, 88.7),          # no IPC optimisation
    ("fig8", "pageable"): (55.8, 40.0, 67.7),        # no pinned memory
    ("fig8", "managed"): (64.1, 60.9, 81.2),         # CUDA unified memory
    # Fig 9: switching ablation
    ("fig9", "pipeswitch"): (43.3, 39.6, 55.3),      # active-standby
    ("fig9", "stop-and-start"): (224.6, 189.6, 221.2),  # one process
    ("fig9", "kill-restart"): (5682, 6280, 7378),    # two processes
}

# Figure 6 has no table in PIPESWITCH.md, only this statement.
FIG6_TEXT = ("PipeSwitch keeps the ready model's inference throughput (about 26-27 batches/s) at "
             "every cycle; kill-and-restart serves nothing when the cycle is shorter than its "
             "~5.5 s restart.")


def value(fig, series, model):
    """The paper's number for (figure, series, model), or None. Tiny-zoo models map to the full
    ones they stand in for (resnet_tiny -> resnet152, ...) so a CPU run shows the column too."""
    v = NUMBERS.get((fig, series))
    if v is None:
        return None
    full = {"resnet_tiny": "resnet152", "inception_tiny": "inception_v3",
            "bert_tiny": "bert_base"}.get(model, model)
    return v[MODELS.index(full)] if full in MODELS else None
