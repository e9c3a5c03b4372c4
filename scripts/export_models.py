#!/usr/bin/env python3
"""Exports the evaluation's models from PyTorch to ONNX, with reference inputs and outputs.

Runs where PyTorch, torchvision and transformers are installed (the GPU machine). Weights are
random (seeded): nothing is downloaded. For each model and opset it writes
  OUT/<model>_op<opset>.onnx            (torch.onnx.export, dynamo=False, eval mode)
  OUT/<model>.inputs.npz / .outputs.npz (reference tensors from PyTorch in float32, on the CPU)
  with --raw, also raw little-endian tensors for `psbench infer --input/--reference`:
  OUT/<model>.input_<i>.bin / OUT/<model>.output_<i>.bin, in the ONNX graph's input/output
  order, and OUT/<model>.io.json naming each file's tensor, dtype and shape.
Models: resnet152, resnet50, resnet18, inception_v3 (torchvision), bert_base (HF BertModel,
bert-base-cased sizes: vocab 28996). Images at batch B, BERT at [B, seq].

Usage: export_models.py --out DIR [--models a,b] [--opsets 13,17] [--batch 8] [--seq 251]
                        [--dynamic] [--external] [--no-reference] [--raw]
"""
import argparse
import os
import sys
import time


def build(name):
    import torch
    torch.manual_seed(0)
    if name in ("resnet18", "resnet50", "resnet152", "inception_v3"):
        import torchvision
        kwargs = {"weights": None}
        if name == "inception_v3":
            kwargs.update(aux_logits=False, init_weights=True)
        return getattr(torchvision.models, name)(**kwargs).eval()
    if name == "bert_base":
        from transformers import BertConfig, BertModel
        # bert-base-cased sizes. Eager attention: the explicit MatMul/Softmax form that exports
        # at every opset (the SDPA path needs opset >= 14 and exports as one fused pattern).
        cfg = BertConfig(vocab_size=28996, attn_implementation="eager")
        return BertModel(cfg, add_pooling_layer=True).eval()
    raise SystemExit(f"export_models: unknown model '{name}'")


def make_inputs(name, batch, seq):
    import torch
    g = torch.Generator().manual_seed(1234)
    if name == "bert_base":
        ids = torch.randint(0, 28996, (batch, seq), generator=g, dtype=torch.int64)
        types = torch.randint(0, 2, (batch, seq), generator=g, dtype=torch.int64)
        return (ids, types), ["input_ids", "token_type_ids"], ["last_hidden_state", "pooler_output"]
    size = 299 if name == "inception_v3" else 224
    x = torch.randn(batch, 3, size, size, generator=g)
    return (x,), ["input"], ["logits"]


def write_raw(out_dir, name, in_names, inputs, out_names, outs):
    """Raw little-endian tensors and a JSON index of them (see the module docstring)."""
    import json
    import numpy as np
    index = {"model": name, "inputs": [], "outputs": []}
    for kind, names, tensors in (("input", in_names, inputs), ("output", out_names, outs)):
        for i, (n, t) in enumerate(zip(names, tensors)):
            a = np.ascontiguousarray(t.detach().cpu().numpy())
            a = a.astype(a.dtype.newbyteorder("<"), copy=False)
            file = f"{name}.{kind}_{i}.bin"
            a.tofile(os.path.join(out_dir, file))
            index[kind + "s"].append({"name": n, "file": file, "dtype": str(a.dtype),
                                      "shape": list(a.shape)})
    with open(os.path.join(out_dir, f"{name}.io.json"), "w") as f:
        json.dump(index, f, indent=1)
    print(f"raw tensors of {name} -> {out_dir}/{name}.{{input,output}}_<i>.bin", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="resnet152,inception_v3,bert_base")
    ap.add_argument("--opsets", default="13,17",
                    help="comma-separated opsets; 'model:opset' entries restrict one to a model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=251)
    ap.add_argument("--dynamic", action="store_true", help="symbolic batch (and seq) axes")
    ap.add_argument("--external", action="store_true", help="also save a copy with external data")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--raw", action="store_true",
                    help="also write the reference tensors as raw .bin files plus <model>.io.json")
    args = ap.parse_args()

    import torch
    os.makedirs(args.out, exist_ok=True)
    print(f"torch {torch.__version__}", flush=True)
    for name in args.models.split(","):
        model = build(name)
        inputs, in_names, out_names = make_inputs(name, args.batch, args.seq)
        if name == "bert_base":
            class Wrap(torch.nn.Module):
                def __init__(self, m):
                    super().__init__()
                    self.m = m

                def forward(self, input_ids, token_type_ids):
                    o = self.m(input_ids=input_ids, token_type_ids=token_type_ids)
                    return o.last_hidden_state, o.pooler_output
            model = Wrap(model).eval()
        params = sum(p.numel() for p in model.parameters())
        if not args.no_reference:
            import numpy as np
            with torch.no_grad():
                outs = model(*inputs)
            if isinstance(outs, torch.Tensor):
                outs = (outs,)
            np.savez(os.path.join(args.out, f"{name}.inputs.npz"),
                     **{n: t.numpy() for n, t in zip(in_names, inputs)})
            np.savez(os.path.join(args.out, f"{name}.outputs.npz"),
                     **{n: t.numpy() for n, t in zip(out_names, outs)})
            if args.raw:
                write_raw(args.out, name, in_names, inputs, out_names, outs)
        opsets = []
        for o in args.opsets.split(","):
            m, _, v = o.rpartition(":")
            if not m or m == name:
                opsets.append(int(v))
        for opset in opsets:
            path = os.path.join(args.out, f"{name}_op{opset}.onnx")
            dyn = None
            if args.dynamic:
                dyn = {n: {0: "batch"} for n in in_names + out_names}
                if name == "bert_base":
                    for n in in_names + ["last_hidden_state"]:
                        dyn[n] = {0: "batch", 1: "seq"}
            t0 = time.time()
            torch.onnx.export(model, inputs, path, opset_version=opset, dynamo=False,
                              input_names=in_names, output_names=out_names,
                              dynamic_axes=dyn, do_constant_folding=True)
            mb = os.path.getsize(path) / 1e6
            print(f"exported {name} opset {opset}: {mb:.1f} MB, {params/1e6:.2f} M parameters, "
                  f"{time.time() - t0:.1f} s -> {path}", flush=True)
            if args.external:
                import onnx
                m = onnx.load(path)
                ext = os.path.join(args.out, f"{name}_op{opset}_ext.onnx")
                onnx.save_model(m, ext, save_as_external_data=True, all_tensors_to_one_file=True,
                                location=f"{name}_op{opset}_ext.data", size_threshold=1024)
                print(f"  external-data copy -> {ext}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
