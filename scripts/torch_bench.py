#!/usr/bin/env python3
"""PyTorch eager peer of `psbench infer`: resident-model latency of the same models on the GPU.

The models and inputs are scripts/export_models.py's (torchvision resnet152, inception_v3 with
aux_logits=False, HF BertModel with eager attention; random seeded weights), batch 8, BERT at
sequence 251, in eval mode under torch.inference_mode(). Two precisions:
  fp32  strict: torch.backends.cuda.matmul.allow_tf32 = False, torch.backends.cudnn.allow_tf32 = False
  tf32  both True
cudnn.benchmark stays at PyTorch's default (False) unless --cudnn-benchmark is given.
Each (model, precision): --warmup untimed runs, then --runs timed runs, each timed by CUDA events
around the forward pass (gpu_ms) and by the host clock from call to synchronise (wall_ms); median,
p10 and p90 in milliseconds. Prints one JSON object per line with the keys `psbench infer --json`
prints (model, precision, graph, engine, batch, runs, warmup, gpu_ms, wall_ms), and a table on
stderr.

Usage: torch_bench.py [--models resnet152,inception_v3,bert_base] [--precisions fp32,tf32]
                      [--batch 8] [--seq 251] [--runs 100] [--warmup 20] [--cudnn-benchmark]
                      [--out FILE.jsonl]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models  # noqa: E402  (build() and make_inputs(): the same models and inputs)


def percentiles(values):
    import statistics
    v = sorted(values)

    def q(p):
        pos = p * (len(v) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)
    return {"median": statistics.median(v), "p10": q(0.1), "p90": q(0.9)}


def bench(name, precision, args):
    import torch
    strict = precision == "fp32"
    torch.backends.cuda.matmul.allow_tf32 = not strict
    torch.backends.cudnn.allow_tf32 = not strict
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    model = export_models.build(name).cuda().eval()
    inputs, in_names, _ = export_models.make_inputs(name, args.batch, args.seq)
    inputs = tuple(t.cuda() for t in inputs)
    if name == "bert_base":
        def forward():
            return model(input_ids=inputs[0], token_type_ids=inputs[1])
    else:
        def forward():
            return model(*inputs)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    gpu, wall = [], []
    with torch.inference_mode():
        for _ in range(args.warmup):
            forward()
        torch.cuda.synchronize()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            start.record()
            forward()
            end.record()
            end.synchronize()
            wall.append((time.perf_counter() - t0) * 1e3)
            gpu.append(start.elapsed_time(end))
    del model
    torch.cuda.empty_cache()
    return {"model": name, "precision": precision, "graph": False, "engine": "torch_eager",
            "batch": args.batch, "runs": args.runs, "warmup": args.warmup,
            "gpu_ms": percentiles(gpu), "wall_ms": percentiles(wall),
            "torch": torch.__version__, "cudnn_benchmark": args.cudnn_benchmark,
            "device": torch.cuda.get_device_name()}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet152,inception_v3,bert_base")
    ap.add_argument("--precisions", default="fp32,tf32")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=251)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--cudnn-benchmark", action="store_true")
    ap.add_argument("--out", help="also append the JSON lines to this file")
    args = ap.parse_args()
    if args.runs < 50:
        print("torch_bench: --runs below 50 (the issue asks for a median of at least 50)",
              file=sys.stderr)
    import torch
    if not torch.cuda.is_available():
        print("torch_bench: no CUDA device visible to PyTorch", file=sys.stderr)
        return 1
    out = open(args.out, "a") if args.out else None
    print(f"{'model':14} {'precision':9} {'gpu median':>11} {'p10':>8} {'p90':>8} {'wall median':>12}",
          file=sys.stderr)
    for name in args.models.split(","):
        for precision in args.precisions.split(","):
            if precision not in ("fp32", "tf32"):
                print(f"torch_bench: unknown precision '{precision}'", file=sys.stderr)
                return 2
            r = bench(name, precision, args)
            line = json.dumps(r)
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()
            g, w = r["gpu_ms"], r["wall_ms"]
            print(f"{name:14} {precision:9} {g['median']:11.3f} {g['p10']:8.3f} {g['p90']:8.3f} "
                  f"{w['median']:12.3f}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
