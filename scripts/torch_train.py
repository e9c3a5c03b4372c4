#!/usr/bin/env python3
"""PyTorch eager peer of `psbench train`: SGD steps of the same model on the same batches.

The model is scripts/export_models.py's (build(): torchvision, random weights seeded with
torch.manual_seed(0)), in train() mode: BatchNorm with batch statistics, running statistics
updated with PyTorch's momentum 0.1 (ONNX 0.9). Loss: F.cross_entropy (mean over the batch).
Optimizer: torch.optim.SGD(lr, momentum=0.9, weight_decay=1e-4) (dampening 0, no Nesterov),
the rule models/cpu/sgd.h and the GPU trainer implement.

Three things, any combination:
  --export-onnx PATH  export the model for `psimport --mode training`: the TorchScript exporter
                      with training=PRESERVE on the eval-mode model and no constant folding, so
                      BatchNormalization stays a layer (the EVAL exporter folds it into the
                      convolutions) and the initializers keep their state_dict names.
                      bert_base: BertForSequenceClassification (2 labels, no dropout, no
                      padding row) with inputs input_ids, token_type_ids [--batch, --seq].
  --batches FILE      train on the batches `psbench train --write-batches FILE` wrote (the GPU
                      trainer's own synthetic batches, PSBATCH1 or PSTOKEN1: see below) and print
                      each step's loss in strict fp32 (or --precision); with --compare
                      PSBENCH.json (psbench train --json), print both trajectories and the
                      largest relative difference; exit status 3 above --tolerance (1e-3);
                      with --grads PSGRAD (psbench train --dump-gradients), step 0's gradients
                      parameter by parameter (max |ours - torch| / max |torch|), which names
                      the layer where a trajectory starts to part; --grads-fp64 adds a
                      float64 twin's gradients: PyTorch fp32's and ours against them (how far
                      rounding alone moves a gradient, and whether ours parts further);
                      --fp64-control trains a float64 copy on the same batches too and gives
                      both fp32 trajectories' distance from it ("ok_vs_fp64": ours parts no
                      further than 2x PyTorch fp32's distance, or within --tolerance).
  --time              ms per step on random device batches (bert_base: token ids [batch, --seq],
                      BertForSequenceClassification without dropout), for each of --precisions
                      (fp32: strict, allow_tf32 False for cuDNN and matmul; tf32: both True),
                      CUDA events around each step, median / p10 / p90 of --runs after --warmup.
Prints one JSON object per line (stdout) and a readable line per result on stderr.

PSBATCH1 (little-endian): "PSBATCH1", u32 version = 1, u32 count, u32 rank, u32 classes,
i64 batch, i64 dims[rank]; then per batch: i64 labels[batch], f32 images[batch * prod(dims)].
Batch i is the trainer's data position i. PSTOKEN1 (token models): "PSTOKEN1", u32 version = 1,
u32 count, u32 inputs, u32 classes, i64 batch; per input: u32 name length, name, u32 rank,
i64 dims[rank], i64 vocab; then per batch: i64 labels[batch], per input i64 ids[batch * prod(dims)].

The 20-step comparison, on the GPU machine:
  python3 scripts/torch_train.py --model resnet152 --batch 64 --export-onnx /tmp/r152_train.onnx
  psimport /tmp/r152_train.onnx -o /tmp/r152_train.psm --batch 64 --mode training
  psbench train /tmp/r152_train.psm --precision fp32 --steps 20 --runs 0 --lr 0.01 \\
      --write-batches /tmp/r152.batches --json > /tmp/r152_psbench.json
  python3 scripts/torch_train.py --model resnet152 --batch 64 --lr 0.01 \\
      --batches /tmp/r152.batches --compare /tmp/r152_psbench.json
BERT-base the same way: --model bert_base --batch 8 --seq 251 --export-onnx /tmp/bert_train.onnx,
  psimport ... --batch 8 --seq 251 --mode training, psbench (classes default to its 2 outputs).
Speed: psbench train /tmp/r152_train.psm --precision tf32 --steps 3 --runs 20 and
  python3 scripts/torch_train.py --model resnet152 --batch 64 --time

Usage: torch_train.py --model NAME [--batch 64] [--seq 251] [--lr 0.01] [--momentum 0.9]
                      [--weight-decay 1e-4] [--export-onnx PATH] [--batches FILE]
                      [--steps N] [--precision fp32|tf32] [--compare PSBENCH.json]
                      [--grads PSGRAD [--grads-fp64]] [--fp64-control]
                      [--tolerance 1e-3] [--time [--profile-top N]] [--precisions fp32,tf32] [--runs 20]
                      [--warmup 5] [--device cuda]
"""
import argparse
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models  # noqa: E402  (build(): the same models and weights)


def set_precision(torch, precision):
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def read_batches(path):
    """Yields (labels int64 [N], inputs) numpy arrays from a PSBATCH1 file (inputs: the images,
    float32 [N, dims...]) or a PSTOKEN1 file (inputs: {name: int64 ids [N, dims...]})."""
    import numpy as np
    with open(path, "rb") as f:
        magic, version, count, rank, classes, batch = struct.unpack("<8sIIIIq", f.read(32))
        if magic == b"PSTOKEN1" and version == 1:
            yield from read_token_batches(f, path, count, rank, batch)
            return
        if magic != b"PSBATCH1" or version != 1:
            raise SystemExit(f"torch_train: {path} is not a PSBATCH1 or PSTOKEN1 version 1 file")
        dims = struct.unpack(f"<{rank}q", f.read(8 * rank))
        size = 1
        for d in dims:
            size *= d
        for _ in range(count):
            labels = np.frombuffer(f.read(8 * batch), dtype="<i8")
            images = np.frombuffer(f.read(4 * batch * size), dtype="<f4").reshape((batch,) + dims)
            if labels.size != batch or images.size != batch * size:
                raise SystemExit(f"torch_train: {path} is truncated")
            yield labels, images


def parse_token_file(f, path, count, inputs, batch):
    """The rest of a PSTOKEN1 file (see the module docstring) after its fixed header, without
    numpy: ([(name, dims, vocab)], [(labels, {name: ids})]) with array('q') values, ids flat
    (batch * prod(dims)). Checked: truncation, trailing bytes, ids outside [0, vocab)."""
    import array
    if sys.byteorder != "little":
        raise SystemExit("torch_train: PSTOKEN1 is little-endian; this host is not")

    def take(n):
        data = f.read(n)
        if len(data) != n:
            raise SystemExit(f"torch_train: {path} is truncated")
        return data

    def int64s(n):
        a = array.array("q")
        a.frombytes(take(8 * n))
        return a
    specs = []
    for _ in range(inputs):
        (length,) = struct.unpack("<I", take(4))
        name = take(length).decode()
        (rank,) = struct.unpack("<I", take(4))
        dims = struct.unpack(f"<{rank}q", take(8 * rank))
        (vocab,) = struct.unpack("<q", take(8))
        specs.append((name, dims, vocab))
    batches = []
    for _ in range(count):
        labels = int64s(batch)
        ids = {}
        for name, dims, vocab in specs:
            size = batch
            for d in dims:
                size *= d
            ids[name] = int64s(size)
            if size and not (0 <= min(ids[name]) and max(ids[name]) < vocab):
                raise SystemExit(f"torch_train: {path}: '{name}' has ids outside [0, {vocab})")
        batches.append((labels, ids))
    if f.read(1):
        raise SystemExit(f"torch_train: {path} has bytes after its {count} batches")
    return specs, batches


def read_token_file(path):
    """A whole PSTOKEN1 file without numpy: (header dict, specs, batches) as parse_token_file."""
    with open(path, "rb") as f:
        magic, version, count, inputs, classes, batch = struct.unpack("<8sIIIIq", f.read(32))
        if magic != b"PSTOKEN1" or version != 1:
            raise SystemExit(f"torch_train: {path} is not a PSTOKEN1 version 1 file")
        specs, batches = parse_token_file(f, path, count, inputs, batch)
    return {"count": count, "classes": classes, "batch": batch}, specs, batches


def read_token_batches(f, path, count, inputs, batch):
    """Yields (labels int64 [N], {name: int64 ids [N, dims...]}) numpy arrays (PSTOKEN1)."""
    import numpy as np
    specs, batches = parse_token_file(f, path, count, inputs, batch)
    for labels, ids in batches:
        yield (np.frombuffer(labels, dtype="<i8"),
               {name: np.frombuffer(ids[name], dtype="<i8").reshape((batch,) + dims)
                for name, dims, _ in specs})


def make_model(torch, args):
    if args.model == "bert_base":
        # The fine-tuning graph `psimport --zoo bert_base --mode training` writes:
        # BertForSequenceClassification (bert-base-cased sizes, 2 labels), no dropout (the zoo's
        # graph has none: dropout is the identity at export), eager attention.
        from transformers import BertConfig, BertForSequenceClassification
        torch.manual_seed(0)
        # pad_token_id None: no padding_idx, so the embedding's row 0 gets its gradient as in
        # our Gather backward (PyTorch skips a padding row's gradient).
        cfg = BertConfig(vocab_size=28996, attn_implementation="eager", num_labels=2,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                         pad_token_id=None)
        return BertForSequenceClassification(cfg).to(args.device).train()
    model = export_models.build(args.model)  # seeded: the exported package's weights
    # Inception v3's dropout before fc: the exported (eval-mode) graph has none, so the peer
    # trains without it too, as BERT-base above.
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model.to(args.device).train()


def random_batch(torch, args, g):
    """(inputs, labels) on the device: images, or BERT's token ids and types [batch, seq]."""
    if args.model == "bert_base":
        ids = torch.randint(0, 28996, (args.batch, args.seq), device=args.device, generator=g)
        types = torch.randint(0, 2, (args.batch, args.seq), device=args.device, generator=g)
        y = torch.randint(0, 2, (args.batch,), device=args.device, generator=g)
        return {"input_ids": ids, "token_type_ids": types}, y
    size = 299 if args.model == "inception_v3" else 224
    x = torch.randn(args.batch, 3, size, size, device=args.device, generator=g)
    y = torch.randint(0, 10, (args.batch,), device=args.device, generator=g)
    return {"x": x}, y


def logits_of(model, inputs):
    out = model(**inputs) if "input_ids" in inputs else model(inputs["x"])
    return out.logits if hasattr(out, "logits") else out


def make_optimizer(torch, model, args):
    return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                           weight_decay=args.weight_decay)


def export_onnx(torch, args):
    if args.model == "bert_base":
        # The fine-tuning model as make_model builds it (same seed: the same weights), its two
        # token inputs at [batch, --seq], its logits.
        model = make_model(torch, args).eval().cpu()
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(0, 28996, (args.batch, args.seq), generator=g)
        types = torch.zeros(args.batch, args.seq, dtype=torch.int64)

        class Logits(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, token_type_ids):
                return self.inner(input_ids=input_ids, token_type_ids=token_type_ids).logits
        torch.onnx.export(Logits(model), (ids, types), args.export_onnx, opset_version=17,
                          dynamo=False, input_names=["input_ids", "token_type_ids"],
                          output_names=["logits"], do_constant_folding=False)
        print(f"exported {args.model} (BertForSequenceClassification, 2 labels, no dropout) -> "
              f"{args.export_onnx}", file=sys.stderr)
        return
    model = export_models.build(args.model).eval()
    size = 299 if args.model == "inception_v3" else 224
    x = torch.randn(args.batch, 3, size, size)
    torch.onnx.export(model, (x,), args.export_onnx, opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    print(f"exported {args.model} (BatchNorm kept) -> {args.export_onnx}", file=sys.stderr)


def read_gradients(path):
    """psbench train --dump-gradients' file (PSGRAD1): [(name, shape, float32 array)]."""
    import numpy as np
    out = []
    with open(path, "rb") as f:
        if f.read(8) != b"PSGRAD1\0":
            raise SystemExit(f"{path}: not a PSGRAD1 file")
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            (n,) = struct.unpack("<I", f.read(4))
            name = f.read(n).decode()
            (rank,) = struct.unpack("<I", f.read(4))
            shape = struct.unpack(f"<{rank}q", f.read(8 * rank)) if rank else ()
            size = 1
            for d in shape:
                size *= d
            out.append((name, shape, np.frombuffer(f.read(4 * size), dtype="<f4").reshape(shape)))
    return out


def float64_gradients(model, inputs, y):
    """Step 0's gradients of a float64 copy of `model` (as it was before the step) on the same
    batch: the control for --grads. PyTorch fp32 against PyTorch fp64 says how much of the
    fp32 gradients rounding alone moves; ours should part from fp64 by about as much."""
    import copy
    import torch.nn.functional as F
    twin = copy.deepcopy(model).double()
    twin.zero_grad(set_to_none=True)
    inputs64 = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}
    F.cross_entropy(logits_of(twin, inputs64), y).backward()
    return {n: p.grad.detach().cpu().numpy() for n, p in twin.named_parameters()
            if p.grad is not None}


def max_rel(values, reference, floor):
    """max |values - reference| / max |reference| (the denominator at least `floor`)."""
    import numpy as np
    return float(np.abs(values - reference).max()) / max(float(np.abs(reference).max()), floor)


def compare_gradients(model, path, grads64=None):
    """Step 0's gradients, ours (by ONNX initializer name) against PyTorch's (by parameter
    name), in the file's (the model's tensor) order: max |ours - torch| / max |torch| each;
    with grads64 (float64_gradients) also PyTorch fp32's and ours against fp64."""
    import numpy as np
    params = dict(model.named_parameters())
    unmatched, worst, compared = [], (0.0, None), 0
    ratios = []  # (ours vs fp64) / (torch fp32 vs fp64) per parameter
    for name, shape, ours in read_gradients(path):
        p = params.get(name)
        if p is None or p.grad is None or tuple(p.shape) != tuple(shape):
            unmatched.append(name)
            continue
        theirs = p.grad.detach().float().cpu().numpy()
        scale = max(float(np.abs(theirs).max()), 1e-30)
        rel = max_rel(ours, theirs, 1e-30)
        worst = max(worst, (rel, name))
        compared += 1
        extra = ""
        if grads64 is not None and name in grads64:
            exact = grads64[name]
            ours64 = max_rel(ours.astype(np.float64), exact, 1e-300)
            torch64 = max_rel(theirs.astype(np.float64), exact, 1e-300)
            ratios.append(ours64 / max(torch64, 1e-300))
            extra = f" ours-fp64 {ours64:.3g} torch32-fp64 {torch64:.3g}"
        print(f"grad {name:48s} {str(tuple(shape)):22s} max|torch| {scale:.3e} rel {rel:.3g}"
              f"{extra}", file=sys.stderr)
    summary = {"gradients": path, "compared": compared, "worst_rel": worst[0],
               "worst": worst[1], "unmatched": len(unmatched),
               "unmatched_examples": unmatched[:5]}
    if ratios:
        ratios.sort()
        summary["ours_vs_torch32_error_ratio"] = {
            "median": ratios[len(ratios) // 2], "max": ratios[-1]}
    print(json.dumps(summary), flush=True)


def train_losses(torch, args, float64=False):
    """The losses of SGD steps on --batches (at most --steps), from make_model's weights; with
    float64 the same model, batches and rule in double precision (the rounding-free control)."""
    import torch.nn.functional as F
    model = make_model(torch, args)
    if float64:
        model = model.double()
    opt = make_optimizer(torch, model, args)
    losses = []
    for step, (labels, data) in enumerate(read_batches(args.batches)):
        if args.steps and step >= args.steps:
            break
        if isinstance(data, dict):  # token ids by input name
            inputs = {k: torch.from_numpy(v.copy()).to(args.device) for k, v in data.items()}
        else:
            x = torch.from_numpy(data.copy()).to(args.device)
            inputs = {"x": x.double() if float64 else x}
        y = torch.from_numpy(labels.copy()).to(args.device)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits_of(model, inputs), y)
        loss.backward()
        if step == 0 and args.grads and not float64:
            grads64 = float64_gradients(model, inputs, y) if args.grads_fp64 else None
            compare_gradients(model, args.grads, grads64)
        opt.step()
        losses.append(loss.item())
        print(f"step {step:3d} loss {losses[-1]:.8f}{' (float64)' if float64 else ''}",
              file=sys.stderr)
    del model, opt
    torch.cuda.empty_cache()
    return losses


def rel_by_step(values, reference):
    """|values[i] - reference[i]| / |reference[i]| over the common steps."""
    n = min(len(values), len(reference))
    return [abs(values[i] - reference[i]) / max(abs(reference[i]), 1e-12) for i in range(n)]


def trajectory(torch, args):
    set_precision(torch, args.precision)
    torch.backends.cudnn.benchmark = False
    losses = train_losses(torch, args)
    print(json.dumps({"model": args.model, "engine": "torch", "precision": args.precision,
                      "batch": args.batch, "losses": losses}), flush=True)
    exact = train_losses(torch, args, float64=True) if args.fp64_control else None
    if exact is not None:
        print(json.dumps({"model": args.model, "engine": "torch", "precision": "float64",
                          "batch": args.batch, "losses": exact}), flush=True)
    if not args.compare:
        return 0
    with open(args.compare) as f:
        theirs = json.loads(f.read().strip().splitlines()[-1])["losses"]
    rels = rel_by_step(theirs, losses)
    # The control's distances by step: psbench's and PyTorch fp32's from the float64 losses.
    ours64 = rel_by_step(theirs, exact) if exact is not None else []
    torch64 = rel_by_step(losses, exact) if exact is not None else []
    for i, rel in enumerate(rels):
        extra = ""
        if i < len(ours64):
            extra = (f" float64 {exact[i]:.8f} psbench-fp64 {ours64[i]:.3g}"
                     f" torch-fp64 {torch64[i]:.3g}")
        print(f"step {i:3d} torch {losses[i]:.8f} psbench {theirs[i]:.8f} rel {rel:.3g}{extra}",
              file=sys.stderr)
    worst = max(rels, default=0.0)
    ok = worst <= args.tolerance
    result = {"compare": args.compare, "steps": len(rels), "max_rel": worst,
              "tolerance": args.tolerance, "ok": ok}
    if exact is not None:
        # The control: how far each fp32 trajectory parts from the float64 one. Ours passes it
        # when it parts no further than 2x PyTorch fp32 does (or within --tolerance).
        worst64, torch_worst64 = max(ours64, default=0.0), max(torch64, default=0.0)
        result.update(psbench_vs_fp64=worst64, torch_vs_fp64=torch_worst64,
                      ok_vs_fp64=worst64 <= max(args.tolerance, 2.0 * torch_worst64))
    print(json.dumps(result), flush=True)
    return 0 if ok else 3


def profile_steps(torch, args, model, opt, inputs, y, steps=3):
    """torch.profiler over `steps` more steps: the --profile-top kernels by self device time
    (per step), the peer of psbench train --profile-top's item profile."""
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(logits_of(model, inputs), y).backward()
            opt.step()
        torch.cuda.synchronize()
    rows = [(e.self_device_time_total / steps / 1000.0, e.count // steps, e.key)
            for e in prof.key_averages() if e.self_device_time_total > 0]
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"torch profile: {total:.3f} ms of kernels and copies per step, {len(rows)} kinds",
          file=sys.stderr)
    for ms, count, name in rows[:args.profile_top]:
        print(f"  {ms:8.3f} ms {100.0 * ms / total:5.1f}% x{count:<4d} {name[:110]}",
              file=sys.stderr)


def time_steps(torch, args):
    import statistics
    import torch.nn.functional as F
    for precision in args.precisions.split(","):
        set_precision(torch, precision)
        model = make_model(torch, args)
        opt = make_optimizer(torch, model, args)
        g = torch.Generator(device=args.device).manual_seed(1)
        inputs, y = random_batch(torch, args, g)
        times = []
        for r in range(args.warmup + args.runs):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(logits_of(model, inputs), y).backward()
            opt.step()
            end.record()
            end.synchronize()
            if r >= args.warmup:
                times.append(start.elapsed_time(end))
        v = sorted(times)
        res = {"model": args.model, "engine": "torch", "precision": precision, "batch": args.batch,
               **({"seq": args.seq} if args.model == "bert_base" else {}),
               "runs": args.runs, "gpu_ms": {"median": statistics.median(v),
                                             "p10": v[int(0.1 * (len(v) - 1))],
                                             "p90": v[int(0.9 * (len(v) - 1))]}}
        print(json.dumps(res), flush=True)
        print(f"{args.model} batch {args.batch} {precision}: {res['gpu_ms']['median']:.2f} ms/step",
              file=sys.stderr)
        if args.profile_top:
            profile_steps(torch, args, model, opt, inputs, y)
        del model, opt
        torch.cuda.empty_cache()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=251, help="bert_base: tokens per sequence")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--export-onnx")
    ap.add_argument("--batches")
    ap.add_argument("--steps", type=int, default=0, help="at most this many batches (0: all)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32"])
    ap.add_argument("--compare")
    ap.add_argument("--grads", help="with --batches: compare step 0's gradients with psbench "
                    "train --dump-gradients FILE's, parameter by parameter")
    ap.add_argument("--grads-fp64", action="store_true",
                    help="with --grads: also a float64 twin's gradients, the rounding control")
    ap.add_argument("--fp64-control", action="store_true",
                    help="with --batches: also train a float64 copy on the same batches and "
                    "report how far PyTorch fp32 and psbench (--compare) part from it")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--precisions", default="fp32,tf32")
    ap.add_argument("--profile-top", type=int, default=0,
                    help="with --time: the N largest kernels by device time (torch.profiler)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    if not (args.export_onnx or args.batches or args.time):
        ap.error("nothing to do: give --export-onnx, --batches or --time")
    import torch
    print(f"torch {torch.__version__}", file=sys.stderr)
    status = 0
    if args.export_onnx:
        export_onnx(torch, args)
    if args.batches:
        status = trajectory(torch, args)
    if args.time:
        status = max(status, time_steps(torch, args))
    return status


if __name__ == "__main__":
    sys.exit(main())
