#!/usr/bin/env python3
"""PyTorch eager peers of our server on the GPU: the ready model (`psbench infer`'s peer), copying
the whole model then computing, and a cold process.

The models and inputs are scripts/export_models.py's (torchvision resnet152, inception_v3 with
aux_logits=False, HF BertModel with eager attention; random seeded weights), batch 8, BERT at
sequence 251, in eval mode under torch.inference_mode(). Two precisions:
  fp32  strict: torch.backends.cuda.matmul.allow_tf32 = False, torch.backends.cudnn.allow_tf32 = False
  tf32  both True
cudnn.benchmark stays at PyTorch's default (False) unless --cudnn-benchmark is given.
Modes (--modes, default ready):
  ready  the model resident on the GPU: the forward pass alone.
  copy   copy-then-compute: the weights wait in pinned host memory; each run copies every
         parameter and buffer into the (preallocated) model on the GPU, then runs the forward
         pass; the timed span covers both (the peer of the stop-and-start policy).
  cold   a cold process: a new Python process imports torch, initialises CUDA, builds the model
         (random initialisation), moves it to the GPU and runs one forward pass; timed from the
         spawn to the process's exit (--cold-runs processes per model; the peer of kill-restart).
Each (model, precision, mode) but cold: --warmup untimed runs, then --runs timed runs, each timed
by CUDA events (gpu_ms) and by the host clock from call to synchronise (wall_ms); median, p10,
p90, mean and p99 in milliseconds. Prints one JSON object per line with the keys `psbench infer
--json` prints (model, precision, graph, engine, batch, runs, warmup, gpu_ms, wall_ms) plus mode,
and a table on stderr. Cold runs have only wall_ms, and `phases` (the child's own clock: import,
cuda init, build, to GPU, first forward, in ms).

Usage: torch_bench.py [--models resnet152,inception_v3,bert_base] [--precisions fp32,tf32]
                      [--modes ready,copy,cold] [--batch 8] [--seq 251] [--runs 100] [--warmup 20]
                      [--cold-runs 3] [--cudnn-benchmark] [--out FILE.jsonl]
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models  # noqa: E402  (build() and make_inputs(): the same models and inputs)
from repro import stats  # noqa: E402  (mean and p99 as the harness computes them)


def percentiles(values):
    v = sorted(values)

    def q(p):
        pos = p * (len(v) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)
    return {"median": statistics.median(v), "p10": q(0.1), "p90": q(0.9),
            "mean": statistics.mean(v), "p99": stats.p99(v)}


def set_precision(torch, precision, cudnn_benchmark):
    strict = precision == "fp32"
    torch.backends.cuda.matmul.allow_tf32 = not strict
    torch.backends.cudnn.allow_tf32 = not strict
    torch.backends.cudnn.benchmark = cudnn_benchmark


def forward_fn(name, model, inputs):
    if name == "bert_base":
        return lambda: model(input_ids=inputs[0], token_type_ids=inputs[1])
    return lambda: model(*inputs)


def bench(name, precision, args, mode="ready"):
    import torch
    set_precision(torch, precision, args.cudnn_benchmark)
    model = export_models.build(name).cuda().eval()
    inputs, in_names, _ = export_models.make_inputs(name, args.batch, args.seq)
    inputs = tuple(t.cuda() for t in inputs)
    forward = forward_fn(name, model, inputs)
    step = forward
    if mode == "copy":
        # The weights' home is pinned host memory; each run copies all of them in, then computes.
        device_state = model.state_dict()
        host_state = {k: v.detach().cpu().pin_memory() for k, v in device_state.items()}

        def step():
            for k, t in device_state.items():
                t.copy_(host_state[k], non_blocking=True)
            return forward()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    gpu, wall = [], []
    with torch.inference_mode():
        for _ in range(args.warmup):
            step()
        torch.cuda.synchronize()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            start.record()
            step()
            end.record()
            end.synchronize()
            wall.append((time.perf_counter() - t0) * 1e3)
            gpu.append(start.elapsed_time(end))
    del model, step, forward
    torch.cuda.empty_cache()
    return {"model": name, "precision": precision, "mode": mode, "graph": False,
            "engine": "torch_eager", "batch": args.batch, "runs": args.runs, "warmup": args.warmup,
            "gpu_ms": percentiles(gpu), "wall_ms": percentiles(wall),
            "torch": torch.__version__, "cudnn_benchmark": args.cudnn_benchmark,
            "device": torch.cuda.get_device_name()}


def cold_child(name, precision, args):
    """In the fresh process: everything a cold start does, with its own clock per phase."""
    t0 = time.perf_counter()
    phases = {}
    import torch
    phases["import"] = (time.perf_counter() - t0) * 1e3
    t = time.perf_counter()
    torch.cuda.init()
    torch.empty(1, device="cuda")
    phases["cuda_init"] = (time.perf_counter() - t) * 1e3
    set_precision(torch, precision, args.cudnn_benchmark)
    t = time.perf_counter()
    model = export_models.build(name).eval()
    inputs, _, _ = export_models.make_inputs(name, args.batch, args.seq)
    phases["build"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    model = model.cuda()
    inputs = tuple(x.cuda() for x in inputs)
    torch.cuda.synchronize()
    phases["to_gpu"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    with torch.inference_mode():
        forward_fn(name, model, inputs)()
    torch.cuda.synchronize()
    phases["first_forward"] = (time.perf_counter() - t) * 1e3
    print(json.dumps({"phases": phases, "torch": torch.__version__,
                      "device": torch.cuda.get_device_name()}), flush=True)
    return 0


def bench_cold(name, precision, args):
    import subprocess
    wall, phases, info = [], [], {}
    for _ in range(args.cold_runs):
        cmd = [sys.executable, os.path.abspath(__file__), "--cold-child", name,
               "--precisions", precision, "--batch", str(args.batch), "--seq", str(args.seq)]
        if args.cudnn_benchmark:
            cmd.append("--cudnn-benchmark")
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wall.append((time.perf_counter() - t0) * 1e3)
        if out.returncode != 0:
            raise RuntimeError("cold process for %s failed (exit %d): %s" %
                               (name, out.returncode, out.stderr[-2000:]))
        info = json.loads(out.stdout.strip().splitlines()[-1])
        phases.append(info["phases"])
    mean_phases = {k: statistics.mean(p[k] for p in phases) for k in phases[0]}
    return {"model": name, "precision": precision, "mode": "cold", "graph": False,
            "engine": "torch_eager", "batch": args.batch, "runs": args.cold_runs, "warmup": 0,
            "wall_ms": percentiles(wall), "phases": mean_phases, "torch": info.get("torch"),
            "cudnn_benchmark": args.cudnn_benchmark, "device": info.get("device")}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet152,inception_v3,bert_base")
    ap.add_argument("--precisions", default="fp32,tf32")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=251)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--modes", default="ready", help="ready, copy, cold (comma-separated)")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--cudnn-benchmark", action="store_true")
    ap.add_argument("--out", help="also append the JSON lines to this file")
    ap.add_argument("--cold-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cold_child:
        return cold_child(args.cold_child, args.precisions, args)
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in ("ready", "copy", "cold"):
            print(f"torch_bench: unknown mode '{mode}'", file=sys.stderr)
            return 2
    if args.runs < 50:
        print("torch_bench: --runs below 50 (the issue asks for a median of at least 50)",
              file=sys.stderr)
    import torch
    if not torch.cuda.is_available():
        print("torch_bench: no CUDA device visible to PyTorch", file=sys.stderr)
        return 1
    out = open(args.out, "a") if args.out else None
    print(f"{'model':14} {'precision':9} {'mode':5} {'gpu median':>11} {'p10':>8} {'p90':>8} "
          f"{'wall median':>12}", file=sys.stderr)
    for name in args.models.split(","):
        for precision in args.precisions.split(","):
            if precision not in ("fp32", "tf32"):
                print(f"torch_bench: unknown precision '{precision}'", file=sys.stderr)
                return 2
            for mode in modes:
                r = bench_cold(name, precision, args) if mode == "cold" else \
                    bench(name, precision, args, mode)
                line = json.dumps(r)
                print(line, flush=True)
                if out:
                    out.write(line + "\n")
                    out.flush()
                g = r.get("gpu_ms", {"median": float("nan"), "p10": float("nan"),
                                     "p90": float("nan")})
                w = r["wall_ms"]
                print(f"{name:14} {precision:9} {mode:5} {g['median']:11.3f} {g['p10']:8.3f} "
                      f"{g['p90']:8.3f} {w['median']:12.3f}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
