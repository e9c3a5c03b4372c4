"""docs/results.md from a results folder (the CSVs, machine.json and run.json that
scripts/reproduce.sh wrote): the machine, then per figure its plot, its table (mean and p99,
the ratios against the ready model and against PyTorch eager, the original's V100 number) and a
paragraph of what the numbers show. Everything on the page comes from those files.

Usage: python3 -m repro.page --results DIR [--out FILE]   (from scripts/; default DIR/../results.md)
"""
import argparse
import csv
import json
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from repro import figures, paper  # noqa: E402

FIG6_TITLE = "Figure 6: training and inference alternating"
FIG6_WHAT = ("Inference throughput and latency of %s (batch 8) when a training job and inference "
             "requests take turns every cycle seconds. Throughput counts requests completed over the "
             "inference phases' time; the ready model with no training at all is the ceiling.")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(v):
    return float(v) if v not in (None, "") else None


def fmt_ms(v):
    if v is None:
        return "-"
    if v < 10:
        return "%.2f" % v
    if v < 1000:
        return "%.1f" % v
    return "%.0f" % v


def fmt_ratio(v):
    if v is None:
        return "-"
    return ("%.2fx" if v < 10 else "%.1fx" if v < 100 else "%.0fx") % v


def fmt_paper(v):
    return "-" if v is None else ("%g" % v)


def _ok(r):
    return r is not None and r["status"] == "ok"


def _range(values, f):
    values = [v for v in values if v is not None]
    if not values:
        return None
    lo, hi = min(values), max(values)
    return f(lo) if f(lo) == f(hi) else "%s-%s" % (f(lo), f(hi))


# ---------------------------------------------------------------------------------------------
def link_text(m):
    """The link probe; a run appended over several commands has one probe per command."""
    probes = [p for p in m.get("links") or [] if p.get("gbps")]
    if len(probes) > 1:
        return "%s GB/s, %s us per copy (one probe per command)" % (
            ", ".join("%.1f" % p["gbps"] for p in probes),
            _range([p.get("copy_us") for p in probes], lambda v: "%.1f" % v))
    if m.get("pinned_h2d_gbps"):
        return "%.1f GB/s, %.1f us per copy" % (m["pinned_h2d_gbps"], m["copy_fixed_us"])
    return "not measured (no GPU backend)"


def run_time_text(run):
    def steps(d):
        return ", ".join("%s %.0f s" % (k, v) for k, v in (d or {}).items())
    parts = run.get("parts") or []
    if len(parts) < 2:
        return "%.0f s (%s)" % (run["total_s"], steps(run.get("steps_s")))
    def part(p):
        figs = [k[3:] for k in p.get("figures") or []]
        taken = {k: v for k, v in (p.get("steps_s") or {}).items() if v >= 0.5}
        return "figure%s %s: %s" % ("s" if len(figs) > 1 else "", ",".join(figs), steps(taken))
    return "%.0f s in %d commands (%s)" % (run["total_s"], len(parts),
                                          "; ".join(part(p) for p in parts))


def binaries_text(run):
    """The commit the binaries were built from; after --append, each command's, with the figures
    it measured (a later command may re-measure a series with newer binaries)."""
    parts = run.get("parts") or []
    if len(parts) < 2:
        return run.get("binaries") or "not recorded"
    groups = {}  # commit -> the figures of its commands, in order
    for p in parts:
        figs = ",".join(k[3:] for k in p.get("figures") or [])
        groups.setdefault(p.get("binaries") or "not recorded", []).append(figs)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join("%s (figures %s)" % (c, " / ".join(f)) for c, f in groups.items())


def machine_section(m, run):
    rows = [
        ("GPU", "%s (%s), driver %s" % (m.get("gpu"), m.get("gpu_memory"), m.get("driver"))
         if m.get("gpu") else "none (CPU run)"),
        ("pinned host-to-device link (pipeswitchd's start-up probe)", link_text(m)),
        ("CPU", "%s, %s cores" % (m.get("cpu"), m.get("cpu_cores"))),
        ("software", "Linux %s, Python %s, PyTorch %s (CUDA %s)" %
         (m.get("kernel"), m.get("python"), m.get("torch") or "-", m.get("cuda") or "-")),
        ("binaries (bundle commit)", binaries_text(run)),
        ("checkout (the scripts), date", "%s, %s" % (m.get("commit"), m.get("date"))),
        ("mode", "%s%s" % (run["mode"], ", precision %s" % run["precision"] if run.get("precision")
                           else "")),
        ("models", "%s at batch %d%s; inputs %s" % (
            ", ".join(run["models"]), run["batch"],
            ", BERT sequence %d" % run["seq"] if run.get("seq") else "",
            "sent as data, as the paper's client did" if run["input"] == "data"
            else "synthetic (made by the server)")),
        ("each point", "mean and p99 of %d measured requests after %d warm-up rounds, "
         "round-robin over the models (every request follows another model's)%s" % (
             run["requests"], run["warmup"],
             "".join("; %s: %d warm-up, %d measured" % (k, v[0], v[1])
                     for k, v in sorted(run.get("few_requests", {}).items())))),
        ("background training", ("%s (TRAIN)" % run["train"]) if run["training_supported"]
         else run["training_missing"]),
        ("run time", run_time_text(run)),
        ("command", "`%s`" % run["command"]),
    ]
    out = ["## The machine and the run", "", "| | |", "|---|---|"]
    out += ["| %s | %s |" % r for r in rows]
    return out


def plot_line(run, key, title):
    plots = run.get("plots", {})
    f = plots.get("files", {}).get(key)
    if f:
        return ["![%s](results/%s)" % (title, f), ""]
    return ["*Plot skipped: %s.*" % (plots.get("reason") or "not drawn"), ""]


def figure_table(rows, models):
    out = ["| series | model | mean ms | p99 ms | x ready | x PyTorch eager | %s ms |" % paper.LABEL,
           "|---|---|---|---|---|---|---|"]
    series = list(dict.fromkeys(r["series"] for r in rows))
    by = {(r["series"], r["model"]): r for r in rows}
    for model in models:
        for s in series:
            r = by.get((s, model))
            if r is None:
                continue
            if _ok(r):
                cells = [fmt_ms(num(r["mean_ms"])), fmt_ms(num(r["p99_ms"])),
                         fmt_ratio(num(r["vs_ready"])), fmt_ratio(num(r["vs_pytorch"]))]
            else:
                cells = [r["status"], "-", "-", "-"]
            out.append("| %s | %s | %s | %s |" % (r["label"], model, " | ".join(cells),
                                                 fmt_paper(num(r["paper_ms"]))))
    return out


def _get(rows, series, model):
    return next((r for r in rows if r["series"] == series and r["model"] == model), None)


def _ratio_text(rows, models, series, base, what):
    """'X-Yx BASE (model a, b, c)' of series over base, or None."""
    vals = []
    for m in models:
        a, b = _get(rows, series, m), _get(rows, base, m)
        if _ok(a) and _ok(b):
            vals.append(num(a["mean_ms"]) / num(b["mean_ms"]))
    r = _range(vals, fmt_ratio)
    return None if r is None else "%s %s" % (r, what)


def _paper_ratio(fig, series, base, models):
    vals = [paper.value(fig, series, m) / paper.value(fig, base, m) for m in models
            if paper.value(fig, series, m) and paper.value(fig, base, m)]
    return _range(vals, fmt_ratio)


def paragraph(key, rows, models, run):
    """What the figure's numbers show, and where the remaining gap is, from the numbers."""
    s = []
    if key == "fig5":
        t = _ratio_text(rows, models, "pipeswitch", "ready", "the ready model")
        if t:
            s.append("A request whose model is not on the device costs %s with PipeSwitch "
                     "(the original: %s on a V100)." % (t, _paper_ratio("fig5", "pipeswitch",
                                                                       "ready", models)))
        gaps = []
        for m in models:
            p, r = _get(rows, "pipeswitch", m), _get(rows, "ready", m)
            if _ok(p) and _ok(r):
                d = num(p["mean_ms"]) - num(r["mean_ms"])
                gaps.append("%s %s%s ms (startup %s ms, server %s of %s ms)" % (
                    m, "+" if d >= 0 else "-", fmt_ms(abs(d)),
                    fmt_ms(num(p["startup_ms"])), fmt_ms(num(p["server_ms"])),
                    fmt_ms(num(p["mean_ms"]))))
        if gaps:
            s.append("The remaining gap over the ready model, with the server's own time to the "
                     "first layer (startup) and its time for the whole request: %s; the rest of "
                     "the client's time is the loopback and the host." % "; ".join(gaps))
        t = _ratio_text(rows, models, "pipeswitch-train", "ready", "the ready model")
        if t:
            pre = _range([num(r["preempt_p99_ms"]) for r in rows
                          if r["series"] == "pipeswitch-train" and _ok(r)], fmt_ms)
            s.append("Switching from a running training job costs %s%s." % (
                t, "; the job's own p99 time to yield to a request was %s ms" % pre if pre else ""))
        t = _ratio_text(rows, models, "ready", "torch-ready", "PyTorch eager's ready model")
        if t:
            s.append("Our ready model is %s." % t)
        t = _ratio_text(rows, models, "kill-restart", "ready", "the ready model")
        if t:
            s.append("Killing and restarting a process costs %s (the original: %s)%s." % (
                t, _paper_ratio("fig5", "kill-restart", "ready", models),
                "; a cold PyTorch process " + _ratio_text(rows, models, "torch-cold", "ready",
                                                         "the ready model")
                if _ratio_text(rows, models, "torch-cold", "ready", "") else ""))
        co = [_get(rows, "co-run", m) for m in models]
        if co and not any(_ok(r) for r in co if r):
            s.append("Co-running training and inference: %s." % co[0]["status"])
        else:
            t = _ratio_text(rows, models, "co-run", "ready", "the ready model")
            if t:
                s.append("Co-running with a training job costs %s (the original, with MPS: %s)." %
                         (t, _paper_ratio("fig5", "co-run", "ready", models)))
    elif key == "fig7":
        best = []
        for m in models:
            ok = [r for r in rows if r["model"] == m and _ok(r)]
            if ok:
                b = min(ok, key=lambda r: num(r["mean_ms"]))
                best.append("%s: %s" % (m, b["series"]))
        if best:
            s.append("Fastest grouping per model: %s." % ", ".join(best))
        for other, what in (("optimal", "the predicted-optimal groups"),
                            ("blocks", "the original's block groups"),
                            ("per-layer", "per-layer groups"),
                            ("whole", "one whole-model copy before compute")):
            t = _ratio_text(rows, models, other, "pipeswitch", "of the timed grouping")
            if t:
                p = _paper_ratio("fig7", other, "pipeswitch", models)
                s.append("With %s a request takes %s%s." % (
                    what, t, " (the original: %s)" % p if p else ""))
        t = _ratio_text(rows, models, "pipeswitch", "ready", "the ready model")
        if t:
            s.append("The timed grouping itself is %s (figure 5's ready model)." % t)
        r = _get(rows, "per-layer-no-pipeline", models[0])
        if r and not _ok(r):
            s.append("Per-layer without pipelining: %s." % r["status"])
    elif key == "fig8":
        for other, what in (("no-pool", "Allocating and freeing device memory per switch"),
                            ("pageable", "Copying from pageable host memory"),
                            ("managed", "CUDA managed memory")):
            t = _ratio_text(rows, models, other, "pipeswitch", "of PipeSwitch")
            if t:
                p = _paper_ratio("fig8", other, "pipeswitch", models)
                s.append("%s costs %s%s." % (what, t, " (the original: %s)" % p if p else ""))
        s.append("The original's IPC ablation has no counterpart: one server process holds every "
                 "model, so no memory handle crosses a process boundary.")
    elif key == "fig9":
        for other, what in (("stop-and-start", "Stopping and copying the whole model in one "
                                               "process"),
                            ("kill-restart", "A fresh process per request")):
            t = _ratio_text(rows, models, other, "pipeswitch", "of PipeSwitch")
            if t:
                p = _paper_ratio("fig9", other, "pipeswitch", models)
                s.append("%s costs %s%s." % (what, t, " (the original: %s)" % p if p else ""))
        t = _ratio_text(rows, models, "stop-and-start", "torch-copy",
                        "of PyTorch's copy-then-compute")
        if t:
            s.append("Our stop-and-start is %s." % t)
        t = _ratio_text(rows, models, "kill-restart", "torch-cold", "of a cold PyTorch process")
        if t:
            s.append("Our fresh process is %s." % t)
    if run.get("cpu"):
        s.append("(CPU run: the tiny models on the reference executor, where nothing is switched; "
                 "these numbers test the harness, not PipeSwitch.)")
    return " ".join(s) if s else "No point of this figure was measured in this run."


def fig6_section(rows, run):
    model = run["models"][0]
    out = ["## " + FIG6_TITLE, "", FIG6_WHAT % model, ""]
    out += plot_line(run, "fig6", FIG6_TITLE)
    out += ["| series | cycle s | throughput /s | mean ms | p99 ms | requests | training steps |",
            "|---|---|---|---|---|---|---|"]
    for r in rows:
        if _ok(r):
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                r["label"], r["cycle_s"] or "-", "%.1f" % num(r["throughput_per_s"]),
                fmt_ms(num(r["mean_ms"])), fmt_ms(num(r["p99_ms"])), r["requests"],
                r["train_steps"] or "-"))
        else:
            out.append("| %s | %s | %s | - | - | - | - |" % (r["label"], r["cycle_s"] or "-",
                                                             r["status"]))
    out.append("")
    s = []
    ready = next((r for r in rows if r["series"] == "ready" and _ok(r)), None)
    if ready:
        s.append("The ready model alone serves %.1f requests/s (mean %s ms)." %
                 (num(ready["throughput_per_s"]), fmt_ms(num(ready["mean_ms"]))))
    missing = {}
    for series in dict.fromkeys(r["series"] for r in rows if r["series"] != "ready"):
        pts = [r for r in rows if r["series"] == series]
        ok = [r for r in pts if _ok(r)]
        if ok and ready:
            s.append("%s: %s of the ready model's throughput at cycles %s s." % (
                pts[0]["label"], ", ".join("%.0f%%" % (100 * num(r["throughput_per_s"]) /
                                                      num(ready["throughput_per_s"])) for r in ok),
                ", ".join(r["cycle_s"] for r in ok)))
        elif pts and not ok:
            missing.setdefault(pts[0]["status"], []).append(series)
    for status, names in missing.items():
        s.append("%s: %s." % (", ".join(names), status))
    s.append("The original (paper text, no table): " + paper.FIG6_TEXT)
    out += [" ".join(s), ""]
    return out


def render(results_dir, doc_link="reproduce.md"):
    with open(os.path.join(results_dir, "run.json")) as f:
        run = json.load(f)
    with open(os.path.join(results_dir, "machine.json")) as f:
        machine = json.load(f)
    models = run["models"]
    out = ["# Results: the paper's evaluation reproduced", "",
           "Generated by `scripts/reproduce.sh` from the files in [results/](results/) (CSV, JSON, "
           "PNG); do not edit by hand. [docs/reproduce.md](%s) says how to run it and "
           "what each figure measures. Latencies are client-measured over loopback TCP, from "
           "sending a request to its reply, in ms. *x ready* is a point's mean over the ready "
           "model's mean (same model, this run), *x PyTorch eager* over PyTorch eager's ready "
           "model on this machine; the last column is the original's number on a V100 "
           "(PIPESWITCH.md), for reference only: another GPU, another link." % doc_link, ""]
    if run.get("cpu"):
        out += ["> **CPU run (`--cpu`)**: the tiny zoo models (%s) on the CPU reference executor. "
                "It exercises the harness end to end (servers, clients, CSV, plots, this page); "
                "its numbers say nothing about PipeSwitch, and the paper's column belongs to the "
                "full-size models the tiny ones stand in for." % ", ".join(models), ""]
    out += machine_section(machine, run) + [""]
    for key in run["figures"]:
        path = os.path.join(results_dir, key + ".csv")
        if not os.path.exists(path):
            continue
        rows = read_csv(path)
        if key == "fig6":
            out += fig6_section(rows, run)
            continue
        fig = figures.figure(key)
        out += ["## " + fig.title, "", fig.what, ""]
        out += plot_line(run, key, fig.title)
        out += figure_table(rows, models) + [""]
        out += [paragraph(key, rows, models, run), ""]
    return "\n".join(out)


def doc_link(out_path):
    """docs/reproduce.md relative to a page written inside this checkout (docs/results.md, an
    archived run under docs/measurements/); a page written elsewhere (a GPU machine's /tmp/docs)
    is meant to be copied into docs/."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    where = os.path.dirname(os.path.abspath(out_path))
    if os.path.commonpath([repo, where]) != repo:
        return "reproduce.md"
    return os.path.relpath(os.path.join(repo, "docs", "reproduce.md"), where)


def write(results_dir, out_path):
    text = render(results_dir, doc_link(out_path))
    with open(out_path, "w") as f:
        f.write(text)
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--out")
    a = ap.parse_args()
    write(a.results, a.out or os.path.join(os.path.dirname(os.path.abspath(a.results)),
                                           "results.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
