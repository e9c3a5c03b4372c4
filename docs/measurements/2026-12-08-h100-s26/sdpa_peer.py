#!/usr/bin/env python3
"""PyTorch peers of one FusedAttention launch (BERT-base: batch 8, 12 heads, sequence 251, head
64, fp32 data): torch.nn.functional.scaled_dot_product_attention with each backend PyTorch
allows for fp32 (EFFICIENT_ATTENTION, MATH), TF32 on and off. Median of --runs CUDA-event-timed
calls after --warmup. Prints one line a (backend, precision): microseconds and max error
against float64."""
import argparse

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=200)
ap.add_argument("--warmup", type=int, default=20)
a = ap.parse_args()
g = torch.Generator(device="cuda").manual_seed(1)
q, k, v = (torch.randn(8, 12, 251, 64, device="cuda", generator=g) for _ in range(3))
ref = torch.softmax((q.double() @ k.double().transpose(-1, -2)) / 8.0, -1) @ v.double()
for tf32 in (True, False):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    for backend in (SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH):
        try:
            with sdpa_kernel(backend):
                f = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)
                for _ in range(a.warmup):
                    y = f()
                times = []
                for _ in range(a.runs):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record(); y = f(); e.record(); e.synchronize()
                    times.append(s.elapsed_time(e) * 1000.0)
            times.sort()
            err = ((y.double() - ref).abs().max() / ref.abs().max()).item()
            print(f"sdpa {backend.name} {'tf32' if tf32 else 'fp32'}: median {times[len(times)//2]:.1f} us "
                  f"p10 {times[len(times)//10]:.1f} us, max error/max|ref| {err:.2e}", flush=True)
        except RuntimeError as ex:
            print(f"sdpa {backend.name} {'tf32' if tf32 else 'fp32'}: not available ({ex})".splitlines()[0])
