"""scripts/reproduce.sh: the paper's evaluation (figures 5-9) on this machine, end to end.

Starts pipeswitchd once per configuration, runs the paper's clients over loopback TCP, runs the
PyTorch peers, and writes OUT/results/*.csv, machine.json, run.json, one PNG per figure (when
matplotlib is importable) and OUT/results.md. docs/reproduce.md explains each figure, the modes
and the time budget.

GPU (default): the models are PyTorch's exports (random weights) made here by
scripts/export_models.py and imported with psimport (per-layer groups); --models-dir skips both.
--cpu: pipeswitchd --device cpu --zoo with the tiny zoo models (resnet_tiny, inception_tiny,
bert_tiny): the harness's own test; the numbers say nothing about PipeSwitch.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.dirname(HERE)
REPO = os.path.dirname(SCRIPTS)
sys.path.insert(0, SCRIPTS)

from repro import client, fig6, figures, machine, measure, paper, peers, server  # noqa: E402
from repro.configs import server_flags  # noqa: E402

GPU_MODELS = ["resnet152", "inception_v3", "bert_base"]
CPU_MODELS = ["resnet_tiny", "inception_tiny", "bert_tiny"]
FIG_CSV_FIELDS = ["figure", "series", "label", "source", "model", "status", "mean_ms", "p99_ms",
                  "requests", "min_ms", "server_ms", "switch_ms", "startup_ms", "vs_ready",
                  "vs_pytorch", "paper_ms", "config", "background", "train_steps",
                  "preemptions", "preempt_p99_ms"]
FIG6_CSV_FIELDS = ["figure", "series", "label", "cycle_s", "status", "inference_s", "requests",
                   "throughput_per_s", "mean_ms", "p99_ms", "train_steps", "preemptions"]


class Context:
    """Everything a measurement needs: binaries, server flags, models, inputs, counts, training."""

    def __init__(self, args):
        self.args = args
        self.bin = args.bin
        self.cpu = args.cpu
        self.quick = args.quick
        self.models = args.models.split(",")
        self.batch = 8
        self.seq = 16 if args.cpu else 251
        self.warmup, self.requests = args.warmup, args.requests
        # kill-restart costs about a second per request on a GPU: fewer of them in quick mode.
        self.few = {"kill-restart": (2, 5)} if args.quick and not args.cpu else {}
        # The background job: on the CPU the tiny zoo model (re-imported for training by the
        # server); on a GPU a training-mode package of the first model at batch 64
        # (export_and_import makes <model>_train.psm), as the paper trained ResNet152.
        self.train_model = self.models[0] if args.cpu else self.models[0] + "_train"
        self.train_batch = 8 if args.cpu else 64
        self.fig6_model = self.models[0]
        self.fig6_series = args.fig6_series.split(",")
        self.cycles = [float(c) if "." in c else int(c) for c in args.cycles.split(",")]
        self.window_s = args.window
        self.train_warm_s = args.train_warm
        self.train_gap_s = args.train_gap
        self.help_text = subprocess.run([server.find_tool(args.bin, "pipeswitchd"), "--help"],
                                        capture_output=True, text=True).stdout
        self.payloads = {}
        self.input_files = {}
        self.training_supported = False
        self.training_missing = "not available (training not probed)"
        self.link = {}
        self.registered = {}
        self.logs = os.path.join(args.work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        if args.cpu:
            self.server_args = ["--device", "cpu", "--zoo=" + ",".join(self.models),
                                "--zoo-batch", str(self.batch), "--zoo-seq", str(self.seq)]
        else:
            # The pool holds the inference models and the training job (ResNet152 at batch 64
            # keeps every activation of a step); a kill-restart child still finds room for its own.
            self.server_args = ["--device", args.device, "--models", args.models_dir,
                                "--precision", args.precision, "--pool-size", args.pool_size]

    def flags(self, config):
        """pipeswitchd's flags for a configuration (those this build knows)."""
        return self.server_args + server_flags(config, self.help_text)

    def single_model_flags(self, config, model):
        """As flags(), with only `model` registered (figure 6 serves one model; a restart then
        loads only it, as the paper's restarted process did)."""
        if self.cpu:
            base = [a if not a.startswith("--zoo=") else "--zoo=" + model for a in self.server_args]
        else:
            one = os.path.join(self.args.work, "models_" + model)
            os.makedirs(one, exist_ok=True)
            # The model, and the training job's model when it trains this one.
            for name in {model, self.train_model if self.train_model.startswith(model) else model}:
                link = os.path.join(one, name + ".psm")
                target = os.path.abspath(os.path.join(self.args.models_dir, name + ".psm"))
                if not os.path.exists(link) and os.path.exists(target):
                    os.symlink(target, link)
            base = [one if prev == "--models" else a
                    for prev, a in zip([None] + self.server_args, self.server_args)]
        return base + server_flags(config, self.help_text)

    def log(self, name):
        path = os.path.join(self.logs, name + ".log")
        if os.path.exists(path):
            os.remove(path)
        return path

    def window(self, cycle):
        """Seconds a fig 6 series runs at `cycle`: at least one training + inference pair."""
        return max(self.window_s, 2 * cycle)


class Progress:
    def __init__(self):
        self.t0 = time.monotonic()
        self.steps = {}

    def __call__(self, msg):
        print("[%5.0f s] %s" % (time.monotonic() - self.t0, msg), flush=True)

    def step(self, name, start):
        self.steps[name] = round(time.monotonic() - start, 1)


# ---------------------------------------------------------------------------------------------
def export_and_import(ctx, progress):
    """GPU: PyTorch exports (opset 17, batch 8, BERT seq 251) and psimport, reused when present."""
    args = ctx.args
    work = args.work
    models_dir = os.path.join(work, "models")
    os.makedirs(models_dir, exist_ok=True)
    missing = [m for m in ctx.models if not os.path.exists(os.path.join(work, "%s_op17.onnx" % m))]
    if missing:
        progress("export %s from PyTorch (opset 17, batch 8, seq 251)" % ",".join(missing))
        with open(os.path.join(ctx.logs, "export.log"), "w") as log:
            rc = subprocess.call([args.python, os.path.join(SCRIPTS, "export_models.py"), "--out", work,
                                  "--models", ",".join(missing), "--opsets", "17", "--batch", "8",
                                  "--seq", "251", "--no-reference"], stdout=log, stderr=log)
        if rc != 0:
            sys.exit("reproduce: the export failed (see %s/export.log)" % ctx.logs)
    psimport = server.find_tool(ctx.bin, "psimport")
    for m in ctx.models:
        psm = os.path.join(models_dir, m + ".psm")
        if os.path.exists(psm):
            continue
        progress("psimport %s (per-layer groups)" % m)
        with open(os.path.join(ctx.logs, "import_%s.log" % m), "w") as log:
            rc = subprocess.call([psimport, os.path.join(work, "%s_op17.onnx" % m), "-o", psm,
                                  "--batch", "8", "--seq", "251"], stdout=log, stderr=log)
        if rc != 0:
            sys.exit("reproduce: psimport %s failed (see %s/import_%s.log)" % (m, ctx.logs, m))
    # The training job's model: exported with BatchNorm kept as a layer (torch_train.py
    # --export-onnx; export_models.py's eval-mode export folds it into the convolutions) at the
    # training batch, and imported for training.
    m = ctx.models[0]
    train_onnx = os.path.join(work, "%s_train%d.onnx" % (m, ctx.train_batch))
    train_psm = os.path.join(models_dir, ctx.train_model + ".psm")
    if not os.path.exists(train_psm):
        if not os.path.exists(train_onnx):
            progress("export %s at batch %d for training (BatchNorm kept)" % (m, ctx.train_batch))
            with open(os.path.join(ctx.logs, "export_train.log"), "w") as log:
                rc = subprocess.call([args.python, os.path.join(SCRIPTS, "torch_train.py"),
                                      "--model", m, "--batch", str(ctx.train_batch),
                                      "--export-onnx", train_onnx], stdout=log, stderr=log)
            if rc != 0:
                sys.exit("reproduce: the training export failed (see %s/export_train.log)" % ctx.logs)
        progress("psimport %s --mode training --batch %d" % (m, ctx.train_batch))
        with open(os.path.join(ctx.logs, "import_train.log"), "w") as log:
            rc = subprocess.call([psimport, train_onnx, "-o", train_psm, "--mode", "training",
                                  "--batch", str(ctx.train_batch)], stdout=log, stderr=log)
        if rc != 0:
            sys.exit("reproduce: psimport --mode training failed (see %s/import_train.log)" %
                     ctx.logs)
    return models_dir


def probe(ctx, progress):
    """One server start: MODELS (to make input tensors), the link, and whether TRAIN works."""
    with server.Server(ctx.bin, ctx.flags("ready"), ctx.log("probe")) as srv, \
            client.TextClient(srv.address) as c:
        ctx.link = server.parse_link(srv.banner)
        infos = c.models()
        for m in ctx.models:
            if m not in infos:
                sys.exit("reproduce: the server has no model %s (it has %s)" % (m, ", ".join(infos)))
            if ctx.args.input == "data":
                ctx.payloads[m] = client.make_input(infos[m], ctx.batch)
                path = os.path.join(ctx.args.work, "input_%s.bin" % m)
                with open(path, "wb") as f:
                    f.write(ctx.payloads[m])
                ctx.input_files[m] = path
        try:
            # A job starts (OK job=N) before the backend has built its trainer: one step, then
            # JOBS says whether it finished or failed (and why).
            job = c.train(ctx.train_model, ctx.train_batch, steps=1)
            state, error = "running", ""
            deadline = time.time() + 300
            while state in ("running", "stopping") and time.time() < deadline:
                time.sleep(0.2)
                for j in c.jobs():
                    if j.get("job") == job:
                        state, error = j.get("state", ""), j.get("error", "")
            if state == "finished":
                ctx.training_supported = True
                progress("training: TRAIN %s batch=%d works on this backend" %
                         (ctx.train_model, ctx.train_batch))
            else:
                ctx.training_missing = ("not available (the training job %s: %s)" %
                                        (state, error.replace("_", " ")))
                progress("training: %s" % ctx.training_missing)
        except client.Unsupported as e:
            ctx.training_missing = ("not available (training not implemented on this backend: %s)"
                                    % str(e).replace("ERR UNSUPPORTED ", ""))
            progress("training: %s" % ctx.training_missing)
    if ctx.link:
        progress("link: %.1f GB/s pinned host to device, %.1f us per copy" %
                 (ctx.link["gbps"], ctx.link["copy_us"]))


def measure_point(ctx, config, background, progress):
    """{model: result} for one configuration: mean/p99 over the measured rounds, or a status."""
    name = config + ("+" + background if background else "")
    if background == "training" and not ctx.training_supported:
        progress("%-22s %s" % (name, ctx.training_missing))
        return {m: {"status": ctx.training_missing} for m in ctx.models}
    log_path = ctx.log("server_" + name)
    try:
        srv = server.Server(ctx.bin, ctx.flags(config), log_path).start()
    except server.ServerError as e:
        progress("%-22s FAILED: %s" % (name, str(e).splitlines()[0]))
        return {m: {"status": "failed (the server did not start; %s)" % os.path.basename(log_path)}
                for m in ctx.models}
    job, c, info = None, None, {}
    try:
        if background == "training":
            c = client.TextClient(srv.address)
            job = c.train(ctx.train_model, ctx.train_batch)
            time.sleep(ctx.train_warm_s)       # the paper's client waited 10 s for training to run
        warmup, requests = ctx.few.get(config, (ctx.warmup, ctx.requests))
        per_model, failed = measure.round_robin(
            ctx.bin, srv.address, ctx.models, warmup + requests, batch=ctx.batch,
            inputs=ctx.input_files, gap_s=ctx.train_gap_s if background == "training" else 0.0)
        if job is not None:
            info = fig6.job_info(c, job)
            c.stop(job)
    finally:
        if c is not None:
            c.close()
        srv.stop()
    for model, reg in server.parse_registered(server.read_log(log_path)).items():
        if config == "pipeswitch" or model not in ctx.registered:   # pipeswitch's groups win
            ctx.registered[model] = reg
    out = {}
    for model in ctx.models:
        rows = per_model[model][warmup:]
        if model in failed or not rows:
            out[model] = {"status": "failed (%s)" % failed.get(model, "no replies")}
            continue
        r = measure.summarize(rows)
        r["status"] = "ok" if r["ok"] else "failed (an error reply)"
        # The training job's own account (JOBS): its steps and how long it took to yield.
        r["train_steps"] = info.get("steps")
        r["preemptions"] = info.get("preemptions")
        if info.get("preempt_p99_us") not in (None, ""):
            r["preempt_p99_ms"] = float(info["preempt_p99_us"]) / 1000.0
        out[model] = r
    progress("%-22s %s" % (name, "  ".join(
        "%s %s" % (m, "%.2f/%.2f ms" % (out[m]["mean_ms"], out[m]["p99_ms"])
                   if out[m]["status"] == "ok" else out[m]["status"]) for m in ctx.models)))
    return out


def run_peers(ctx, figure_keys, progress):
    modes = figures.torch_modes(figure_keys)
    if not modes:
        return {}, None
    if ctx.cpu:
        return {}, "not available (the PyTorch peers run on the GPU with the full models)"
    if ctx.args.no_peers:
        return {}, "not measured (--no-peers)"
    version, cuda, why = peers.torch_version(ctx.args.python)
    ctx.torch_version, ctx.cuda_version = version, cuda
    if why:
        return {}, "not available (%s)" % why
    cold_runs = 1 if ctx.quick else 3
    progress("PyTorch %s peers: %s (cold: %d process%s per model)" %
             (version, ",".join(modes), cold_runs, "" if cold_runs == 1 else "es"))
    try:
        res = peers.run(ctx.args.python, SCRIPTS, ctx.models, modes, ctx.args.precision,
                        ctx.warmup, ctx.requests, cold_runs, ctx.batch, ctx.seq,
                        os.path.join(ctx.logs, "torch_bench.log"))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        progress("PyTorch peers FAILED: %s" % str(e).splitlines()[0])
        return {}, "failed (torch_bench.py; see logs/torch_bench.log)"
    for (mode, model), r in sorted(res.items()):
        progress("torch %-5s %-14s %.2f/%.2f ms" % (mode, model, r["mean_ms"], r["p99_ms"]))
    return res, None


# ---------------------------------------------------------------------------------------------
def figure_rows(ctx, fig, points, torch_res, torch_missing):
    rows = []
    ready = points.get(("ready", None), {})
    for s in fig.series:
        for model in ctx.models:
            r = {"figure": fig.key, "series": s.key, "label": s.label, "model": model,
                 "config": s.config if s.kind == "server" else "", "background": s.background or "",
                 "source": "pytorch" if s.kind == "torch" else "ours"}
            if s.kind == "server":
                res = points[(s.config, s.background)][model]
            elif s.kind == "torch":
                res = torch_res.get((s.config, model)) or {"status": torch_missing or "failed"}
                res.setdefault("status", "ok")
            else:
                res = {"status": s.missing}
            r["status"] = res["status"]
            if res["status"] == "ok":
                r.update({"mean_ms": res["mean_ms"], "p99_ms": res["p99_ms"],
                          "requests": res["requests"], "min_ms": res.get("min_ms"),
                          "server_ms": res.get("server_compute_ms"),
                          "switch_ms": res.get("switch_ms"), "startup_ms": res.get("startup_ms"),
                          "train_steps": res.get("train_steps"), "preemptions": res.get("preemptions"),
                          "preempt_p99_ms": res.get("preempt_p99_ms")})
                rm = ready.get(model, {})
                if rm.get("status") == "ok":
                    r["vs_ready"] = res["mean_ms"] / rm["mean_ms"]
                tr = torch_res.get(("ready", model))
                if tr:
                    r["vs_pytorch"] = res["mean_ms"] / tr["mean_ms"]
            r["paper_ms"] = paper.value(fig.key, s.key, model)
            rows.append(r)
    return rows


def merge_fig6(old_rows, new_rows, measured):
    """Figure 6's rows after an --append run that measured only the series in `measured`: the
    older run's rows of every other series, then this run's, in fig6.SERIES order."""
    kept = [r for r in old_rows if r.get("series") not in measured]
    order = {name: i for i, (name, _) in enumerate(fig6.SERIES)}
    return sorted(kept + new_rows, key=lambda r: order.get(r.get("series"), len(order)))


def run_part(info):
    """One command's share of run.json: what it measured, its steps and its time."""
    return {k: info.get(k) for k in ("figures", "binaries", "steps_s", "total_s", "command")}


def merge_run_info(old, new):
    """run.json after an --append run: the settings are the new run's; the figures, plots,
    commands and times are both runs' ("parts" lists each command's steps)."""
    merged = dict(new)
    merged["parts"] = old.get("parts") or [run_part(old)]
    merged["parts"] = merged["parts"] + [run_part(new)]
    merged["figures"] = [k for k in figures.FIGURE_KEYS
                         if k in old.get("figures", []) or k in new["figures"]]
    merged["plots"] = dict(new.get("plots", {}))
    merged["plots"]["files"] = dict(old.get("plots", {}).get("files", {}),
                                    **new.get("plots", {}).get("files", {}))
    merged["total_s"] = round(sum(p.get("total_s") or 0 for p in merged["parts"]), 1)
    merged["command"] = " && ".join(p["command"] for p in merged["parts"])
    return merged


def write_csv(path, fields, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("%.6g" % v if isinstance(v, float) else ("" if v is None else v))
                        for k, v in r.items()})


def main(argv=None):
    ap = argparse.ArgumentParser(prog="reproduce.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="shorter: fewer kill-restart requests, one cold PyTorch process per model, "
                         "shorter figure 6 cycles and windows (under 10 minutes on an H100)")
    ap.add_argument("--cpu", action="store_true",
                    help="the CPU backend with the tiny zoo models (tests the harness, no GPU)")
    ap.add_argument("--out", help="writes OUT/results.md and OUT/results/ (default: docs/; with "
                                  "--cpu out/repro-cpu/, so a CPU run never replaces GPU results)")
    ap.add_argument("--bin", help="folder with pipeswitchd, psnc, psimport: a bundle's bin/ or a "
                                  "build tree (default: build/, else .gpu/bin)")
    ap.add_argument("--work", help="exports, packages, inputs, server logs (default: "
                                   "out/repro-work; --cpu: out/repro-cpu-work)")
    ap.add_argument("--models-dir", help="GPU: packages MODEL.psm already made (skips the export)")
    ap.add_argument("--device", default="0", help="GPU ordinal for pipeswitchd (default 0)")
    ap.add_argument("--precision", default="tf32", choices=["tf32", "fp32"])
    ap.add_argument("--pool-size", default="48G",
                    help="GPU: pipeswitchd --pool-size (inference models and the training job; "
                         "default 48G)")
    ap.add_argument("--figures", default="5,6,7,8,9", help="which figures (default 5,6,7,8,9)")
    ap.add_argument("--input", default="data", choices=["data", "synthetic"],
                    help="send input tensors as the paper's client did (data), or let the server "
                         "make them (synthetic)")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up rounds per point (10)")
    ap.add_argument("--requests", type=int, default=10, help="measured rounds per point (10)")
    ap.add_argument("--cycles", help="figure 6 cycles in s (default 1,2,5,10,30; quick 1,2,5)")
    ap.add_argument("--window", type=float,
                    help="figure 6: seconds per cycle point, at least one pair (default 20; quick 6)")
    ap.add_argument("--fig6-series", default="ready,pipeswitch,cache,kill-restart")
    ap.add_argument("--train-warm", type=float,
                    help="seconds a training job runs before the co-run requests (default 10, "
                         "the paper's; quick 2)")
    ap.add_argument("--train-gap", type=float,
                    help="seconds between requests while a training job runs, so it has the device "
                         "when each request comes (default 0.5; quick 0.2; --cpu 0.05)")
    ap.add_argument("--python", help="Python with PyTorch for the export and the peers "
                                     "(default /opt/torch/.venv/bin/python3 if present, else python3)")
    ap.add_argument("--no-peers", action="store_true", help="skip the PyTorch peers")
    ap.add_argument("--prepare-only", action="store_true",
                    help="GPU: export and import the models into --work, then stop (a first, short "
                         "command on a machine lent 10 minutes a command)")
    ap.add_argument("--append", action="store_true",
                    help="keep the other figures already in OUT/results (a run split into several "
                         "commands, e.g. the full mode on a machine lent 10 minutes a command)")
    args = ap.parse_args(argv)
    args.models = ",".join(CPU_MODELS if args.cpu else GPU_MODELS)
    if args.out is None:
        args.out = os.path.join(REPO, "out", "repro-cpu") if args.cpu else os.path.join(REPO, "docs")
    args.out = os.path.abspath(args.out)
    args.cycles = args.cycles or ("1,2,5" if args.quick else "1,2,5,10,30")
    if args.window is None:
        args.window = 6.0 if args.quick else 20.0
    if args.train_warm is None:
        args.train_warm = 2.0 if args.quick else 10.0
    if args.train_gap is None:
        args.train_gap = 0.05 if args.cpu else 0.2 if args.quick else 0.5
    if args.python is None:
        venv = "/opt/torch/.venv/bin/python3"
        args.python = venv if os.path.exists(venv) else "python3"
    if args.bin is None:
        args.bin = next((d for d in (os.path.join(REPO, "build"), os.path.join(REPO, ".gpu", "bin"))
                         if os.path.isdir(d)), os.path.join(REPO, "build"))
    args.work = os.path.abspath(args.work or os.path.join(REPO, "out", "repro-cpu-work" if args.cpu
                                                          else "repro-work"))
    figure_keys = ["fig" + f.strip() for f in args.figures.split(",")]
    for k in figure_keys:
        if k not in figures.FIGURE_KEYS:
            ap.error("--figures: no figure %s (known: 5,6,7,8,9)" % k[3:])
    for tool in ("pipeswitchd", "psnc") + (() if args.cpu or args.models_dir else ("psimport",)):
        try:
            server.find_tool(args.bin, tool)
        except FileNotFoundError as e:
            ap.error(str(e) + "; build first (make build) or pass --bin")
    results_dir = os.path.join(args.out, "results")
    os.makedirs(args.work, exist_ok=True)

    progress = Progress()
    mode = ("cpu" if args.cpu else "gpu") + (" quick" if args.quick else " full")
    progress("reproduce: %s mode, figures %s, results -> %s" %
             (mode, ",".join(k[3:] for k in figure_keys), results_dir))
    t = time.monotonic()
    if not args.cpu and not args.models_dir:
        args.models_dir = export_and_import(Context(args), progress)
    if args.prepare_only:
        progress("prepared %s (--prepare-only)" % (args.models_dir or "nothing: --cpu"))
        return 0
    os.makedirs(results_dir, exist_ok=True)
    if not args.append:                        # a fresh run: nothing of an older one stays
        for f in os.listdir(results_dir):
            if f.endswith((".csv", ".png", ".json")):
                os.remove(os.path.join(results_dir, f))
    ctx = Context(args)
    ctx.torch_version = ctx.cuda_version = None
    progress.step("export_import", t)

    t = time.monotonic()
    probe(ctx, progress)
    progress.step("probe", t)

    t = time.monotonic()
    points = {}
    for config, background in figures.server_points(figure_keys):
        points[(config, background)] = measure_point(ctx, config, background, progress)
    if any(k in figure_keys for k in ("fig5", "fig7", "fig8", "fig9")) and ("ready", None) not in points:
        points[("ready", None)] = measure_point(ctx, "ready", None, progress)
    progress.step("server_points", t)

    t = time.monotonic()
    torch_res, torch_missing = run_peers(ctx, figure_keys, progress)
    progress.step("pytorch_peers", t)
    if torch_missing:
        progress("PyTorch peers: %s" % torch_missing)

    for fig in figures.FIGURES:
        if fig.key in figure_keys:
            write_csv(os.path.join(results_dir, fig.key + ".csv"), FIG_CSV_FIELDS,
                      figure_rows(ctx, fig, points, torch_res, torch_missing))

    if "fig6" in figure_keys:
        t = time.monotonic()
        rows6 = fig6.run(ctx, progress)
        path6 = os.path.join(results_dir, "fig6.csv")
        if args.append and os.path.exists(path6):  # keep the series this run did not measure
            with open(path6, newline="") as f:
                rows6 = merge_fig6(list(csv.DictReader(f)), rows6, ctx.fig6_series)
        write_csv(os.path.join(results_dir, "fig6.csv"), FIG6_CSV_FIELDS, rows6)
        progress.step("fig6", t)

    # The machine and the run, then the plots and the page from the files just written.
    machine_info = machine.describe(REPO, ctx.link, ctx.torch_version, ctx.cuda_version)
    machine_path = os.path.join(results_dir, "machine.json")
    if args.append and os.path.exists(machine_path):
        with open(machine_path) as f:
            machine_info = machine.merge(json.load(f), machine_info)
    with open(machine_path, "w") as f:
        json.dump(machine_info, f, indent=1)
    from repro import page, plot  # noqa: E402
    run_info = {"mode": mode, "cpu": args.cpu, "quick": args.quick, "precision":
                None if args.cpu else args.precision, "models": ctx.models, "batch": ctx.batch,
                "seq": ctx.seq, "input": args.input, "warmup": ctx.warmup,
                "requests": ctx.requests, "few_requests": {k: list(v) for k, v in ctx.few.items()},
                "cycles": ctx.cycles, "window_s": ctx.window_s, "train_warm_s": ctx.train_warm_s,
                "train_gap_s": ctx.train_gap_s, "co_run_flags": server_flags("co-run", ctx.help_text),
                "train": "%s batch %d" % (ctx.train_model, ctx.train_batch),
                "training_supported": ctx.training_supported,
                "training_missing": None if ctx.training_supported else ctx.training_missing,
                "registered": ctx.registered, "figures": figure_keys,
                "binaries": machine.binaries_commit(args.bin, REPO),
                "command": "scripts/reproduce.sh " + " ".join(argv if argv is not None else sys.argv[1:])}
    t = time.monotonic()
    run_info["plots"] = plot.plot_all(results_dir, figure_keys, log=progress)
    progress.step("plots", t)
    run_info["steps_s"] = progress.steps
    run_info["total_s"] = round(time.monotonic() - progress.t0, 1)
    old_path = os.path.join(results_dir, "run.json")
    if args.append and os.path.exists(old_path):
        with open(old_path) as f:
            run_info = merge_run_info(json.load(f), run_info)
    with open(os.path.join(results_dir, "run.json"), "w") as f:
        json.dump(run_info, f, indent=1)
    page_path = os.path.join(args.out, "results.md")
    page.write(results_dir, page_path)
    progress("wrote %s and %s (%d s in all)" % (page_path, results_dir, run_info["total_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
