"""One PNG per figure from the CSVs (matplotlib, when importable). Without matplotlib nothing is
drawn and the reason is returned, for the page to say."""
import csv
import os



def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _matplotlib():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt, None
    except Exception as e:  # ImportError, or a broken backend
        return None, "%s: %s" % (type(e).__name__, e)


def plot_all(results_dir, figure_keys, log=print):
    """{'available': bool, 'reason': str or None, 'files': {figure: file name}}."""
    plt, why = _matplotlib()
    if plt is None:
        log("plots skipped: matplotlib is not importable (%s)" % why)
        return {"available": False, "reason": "matplotlib is not importable (%s)" % why, "files": {}}
    files = {}
    for key in figure_keys:
        path = os.path.join(results_dir, key + ".csv")
        if not os.path.exists(path):
            continue
        rows = read_csv(path)
        out = os.path.join(results_dir, key + ".png")
        if key == "fig6":
            _fig6(plt, rows, out)
        else:
            _bars(plt, key, rows, out)
        files[key] = os.path.basename(out)
        log("plot: %s" % out)
    return {"available": True, "reason": None, "files": files}


def _bars(plt, key, rows, out):
    """Grouped bars: one group per model, one bar per series (mean), a whisker up to p99."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    series = list(dict.fromkeys(r["series"] for r in rows))
    labels = {r["series"]: r["label"] for r in rows}
    by = {(r["series"], r["model"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / max(1, len(series))
    missing = []
    for i, s in enumerate(series):
        xs, means, errs = [], [], []
        for j, m in enumerate(models):
            r = by.get((s, m))
            if r and r["status"] == "ok" and r["mean_ms"]:
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                means.append(float(r["mean_ms"]))
                errs.append(max(0.0, float(r["p99_ms"]) - float(r["mean_ms"])))
        hatch = "//" if any(by.get((s, m), {}).get("source") == "pytorch" for m in models) else None
        if not xs:                          # not measured: named in the legend, greyed out
            from matplotlib.patches import Patch
            missing.append(Patch(facecolor="#dddddd", label=labels[s] + " (not available)"))
            continue
        ax.bar(xs, means, width, yerr=[[0] * len(errs), errs], capsize=2, label=labels[s],
               hatch=hatch, color=plt.get_cmap("tab10")(i % 10), edgecolor="white")
    values = [float(r["mean_ms"]) for r in rows if r["status"] == "ok" and r["mean_ms"]]
    log_scale = bool(values) and max(values) / max(1e-9, min(values)) > 30
    if log_scale:
        ax.set_yscale("log")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models)
    ax.set_ylabel("latency, ms (bar: mean, whisker: p99)" + (", log scale" if log_scale else ""))
    ax.set_title({"fig5": "Figure 5: total latency", "fig7": "Figure 7: pipelining and grouping",
                  "fig8": "Figure 8: memory management",
                  "fig9": "Figure 9: switching mechanisms"}.get(key, key))
    ax.legend(handles=ax.get_legend_handles_labels()[0] + missing, fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _fig6(plt, rows, out):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8))
    ready = [r for r in rows if r["series"] == "ready" and r["status"] == "ok"]
    cycles = sorted({float(r["cycle_s"]) for r in rows if r["cycle_s"]})
    for s in dict.fromkeys(r["series"] for r in rows if r["series"] != "ready"):
        pts = [r for r in rows if r["series"] == s and r["status"] == "ok"]
        label = next(r["label"] for r in rows if r["series"] == s)
        if not pts:
            a1.plot([], [], marker="o", label=label + " (not available)")
            continue
        x = [float(r["cycle_s"]) for r in pts]
        a1.plot(x, [float(r["throughput_per_s"]) for r in pts], marker="o", label=label)
        lat = [(float(r["cycle_s"]), float(r["mean_ms"])) for r in pts if r["mean_ms"]]
        a2.plot([p[0] for p in lat], [p[1] for p in lat], marker="o", label=label)
    if ready:
        r = ready[0]
        for ax, v in ((a1, float(r["throughput_per_s"])), (a2, float(r["mean_ms"] or 0))):
            ax.axhline(v, linestyle="--", color="black", label=r["label"])
    from matplotlib.ticker import NullFormatter
    for ax, ylabel in ((a1, "inference throughput, requests/s"), (a2, "mean latency, ms")):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(bottom=0)
        if cycles:
            ax.set_xticks(cycles)
            ax.set_xticklabels(["%g" % c for c in cycles])
        ax.set_xlabel("training / inference cycle, s")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    a1.set_title("Figure 6: throughput when training and inference alternate")
    a2.set_title("latency")
    a1.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
