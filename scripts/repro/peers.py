"""The PyTorch peers (scripts/torch_bench.py: ready model, copy-then-compute, cold process), run
with the Python that has PyTorch, on the same GPU and models as the server."""
import json
import os
import subprocess


def torch_version(python):
    """(torch version, CUDA version, None) or (None, None, why not)."""
    try:
        out = subprocess.run([python, "-c", "import torch, json; print(json.dumps([torch.__version__,"
                              " torch.version.cuda, torch.cuda.is_available()]))"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, None, "PyTorch not usable with %s (%s)" % (python, e)
    if out.returncode != 0:
        return None, None, "PyTorch not importable with %s" % python
    version, cuda, available = json.loads(out.stdout.strip().splitlines()[-1])
    if not available:
        return version, cuda, "PyTorch %s sees no CUDA device" % version
    return version, cuda, None


def run(python, scripts_dir, models, modes, precision, warmup, runs, cold_runs, batch, seq,
        log_path, timeout=1200):
    """{(mode, model): {'mean_ms', 'p99_ms', 'requests', 'min_ms', 'gpu_mean_ms', 'phases'}} or
    raises RuntimeError with the tail of the log."""
    cmd = [python, os.path.join(scripts_dir, "torch_bench.py"), "--models", ",".join(models),
           "--precisions", precision, "--modes", ",".join(modes), "--warmup", str(warmup),
           "--runs", str(runs), "--cold-runs", str(cold_runs), "--batch", str(batch),
           "--seq", str(seq)]
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, timeout=timeout)
        log.write(out.stdout)
    results = {}
    for line in out.stdout.splitlines():
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        w = r["wall_ms"]
        results[(r["mode"], r["model"])] = {
            "mean_ms": w["mean"], "p99_ms": w["p99"], "requests": r["runs"],
            "min_ms": None, "gpu_mean_ms": r.get("gpu_ms", {}).get("mean"),
            "phases": r.get("phases")}
    if out.returncode != 0 and not results:
        with open(log_path) as f:
            raise RuntimeError("torch_bench.py failed (exit %d):\n%s" %
                               (out.returncode, f.read()[-2000:]))
    return results
