#!/usr/bin/env python3
"""Issue 7's preemption measurements: inference requests that arrive while a training job runs.

For each --training policy (yield, co-run) it starts `pipeswitchd --policy ready` (the inference
model resident, so what is measured is the preemption, not a switch) and runs three phases:
  idle      --requests INFER requests of MODEL, one at a time, --gap seconds apart, no training;
  training  TRAIN TRAIN_MODEL (until stopped), --warm seconds, then the same requests; then the
            job's own account (JOBS: steps, images/s, preemptions and their latency) and STOP;
  alone     TRAIN again for --alone seconds without requests: the job's images/s undisturbed.
Printed per policy (and written to OUT/preempt.json):
  - preemption latency: the requests' startup_us while training (accepted -> first layer running;
    GPU backend), p50 and p99 (issue target: p99 < 1 ms), and the job's own preempt_p50/p99_us
    (the CPU backend's: request arrival -> the job parked);
  - inference latency while training / idle (client-measured mean; issue target <= 1.05);
  - training throughput with the requests / alone, against the share of wall time the requests'
    compute took (sum of compute_us over the phase): "throughput lost vs inference's share".

Usage:
  bench_preempt.py --bin BIN --out DIR (--models-dir DIR --model resnet152
                   --train-model resnet152_train | --cpu) [--device 0] [--requests 100]
                   [--gap 0.05] [--warm 5] [--alone 10] [--policies yield,co-run]
                   [--pool-size 48G] [--precision tf32]
On a GPU machine MODEL is an inference package and TRAIN_MODEL a training-mode one in the same
models directory (scripts/repro/run.py makes both: `reproduce.sh --prepare-only`). --cpu serves
the tiny zoo models (resnet_tiny at batch 2, trained by the same server) to try the script.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from repro import client, server, stats  # noqa: E402


def requests(c, model, n, gap_s):
    """n sequential INFERs: [(client ms, reply fields)]."""
    out = []
    for _ in range(n):
        out.append(c.infer(model))
        time.sleep(gap_s)
    return out


def job_line(c, job):
    for j in c.jobs():
        if j.get("job") == job:
            return j
    raise client.ClientError("job %s is not in JOBS" % job)


def wait_ended(c, job, timeout_s=60):
    """Waits until a stopped job has left the GPU (STOP ends it at a chunk boundary; until then
    the one-job slot is taken and the next TRAIN is refused with BUSY)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if job_line(c, job).get("state") not in ("running", "stopping"):
            return
        time.sleep(0.1)
    raise client.ClientError("training job %s did not stop in %d s" % (job, timeout_s))


def wait_steps(c, job, steps, timeout_s=600):
    """Waits until the job has run `steps` steps (it has warmed up: trainer built, profiled)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        j = job_line(c, job)
        if j.get("state") not in ("running", "stopping"):
            raise client.ClientError("training job %s %s: %s" % (job, j.get("state"),
                                                                 j.get("error", "").replace("_", " ")))
        if int(j.get("steps", "0")) >= steps:
            return j
        time.sleep(0.2)
    raise client.ClientError("training job %s did not reach %d steps in %d s" % (job, steps, timeout_s))


def phase_summary(rows, elapsed_s):
    ms = [r[0] for r in rows]
    startup = [int(r[1].get("startup_us", 0)) for r in rows]
    compute = [int(r[1].get("compute_us", 0)) for r in rows]
    return {"latency_ms": stats.summary(ms),
            "startup_us": stats.summary(startup),
            "startup_p50_us": statistics.median(startup),
            "inference_share": sum(compute) / 1e6 / elapsed_s if elapsed_s > 0 else None}


def measure(args, policy, log_path):
    flags = list(args.server_args) + ["--policy", "ready", "--training", policy]
    result = {"policy": policy}
    with server.Server(args.bin, flags, log_path) as srv, client.TextClient(srv.address) as c:
        requests(c, args.model, 5, 0.0)  # warm-up
        t0 = time.time()
        idle = requests(c, args.model, args.requests, args.gap)
        result["idle"] = phase_summary(idle, time.time() - t0)

        job = c.train(args.train_model)
        wait_steps(c, job, 2)
        time.sleep(args.warm)
        before = job_line(c, job)
        t0 = time.time()
        busy = requests(c, args.model, args.requests, args.gap)
        elapsed = time.time() - t0
        after = job_line(c, job)
        c.stop(job)
        wait_ended(c, job)
        result["training"] = phase_summary(busy, elapsed)
        steps = int(after["steps"]) - int(before["steps"])
        result["training"]["job_steps"] = steps
        result["training"]["job_images_per_s"] = steps * args.train_batch / elapsed
        for key in ("preemptions", "preempt_p50_us", "preempt_p99_us", "preempt_max_us"):
            result["training"]["job_" + key] = int(after.get(key, "0"))

        alone = c.train(args.train_model)
        first = wait_steps(c, alone, 2)
        t0 = time.time()
        time.sleep(args.alone)
        last = job_line(c, alone)
        c.stop(alone)
        wait_ended(c, alone)
        steps = int(last["steps"]) - int(first["steps"])
        result["alone"] = {"job_steps": steps,
                           "job_images_per_s": steps * args.train_batch / (time.time() - t0)}
    return result


def report(r):
    idle, busy, alone = r["idle"], r["training"], r["alone"]
    ratio = busy["latency_ms"]["mean"] / idle["latency_ms"]["mean"]
    kept = busy["job_images_per_s"] / alone["job_images_per_s"] if alone["job_images_per_s"] else 0
    lines = [
        "training %s:" % r["policy"],
        "  preemption (startup_us while training): p50 %.0f us, p99 %.0f us (target p99 < 1000)"
        % (busy["startup_p50_us"], busy["startup_us"]["p99"]),
        "  the job's own account: %d preemptions, p50 %d us, p99 %d us, max %d us"
        % (busy["job_preemptions"], busy["job_preempt_p50_us"], busy["job_preempt_p99_us"],
           busy["job_preempt_max_us"]),
        "  inference latency: idle %.3f ms, while training %.3f ms mean (x%.3f; target <= 1.05); "
        "p99 %.3f / %.3f ms" % (idle["latency_ms"]["mean"], busy["latency_ms"]["mean"], ratio,
                                idle["latency_ms"]["p99"], busy["latency_ms"]["p99"]),
        "  training: %.1f images/s with the requests, %.1f alone (%.1f%% kept); the requests' "
        "compute took %.1f%% of the time" % (busy["job_images_per_s"], alone["job_images_per_s"],
                                             100 * kept, 100 * (busy["inference_share"] or 0)),
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="a bundle's bin/ or a build tree")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cpu", action="store_true", help="the tiny zoo models on the CPU backend")
    ap.add_argument("--models-dir")
    ap.add_argument("--model", default="resnet152")
    ap.add_argument("--train-model", default="resnet152_train")
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--device", default="0")
    ap.add_argument("--precision", default="tf32", choices=["tf32", "fp32"])
    ap.add_argument("--pool-size", default="48G")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between requests")
    ap.add_argument("--warm", type=float, default=5.0, help="seconds of training before requests")
    ap.add_argument("--alone", type=float, default=10.0, help="seconds of training alone")
    ap.add_argument("--policies", default="yield,co-run")
    args = ap.parse_args()
    if args.cpu:
        args.model = args.train_model = "resnet_tiny"
        args.train_batch = 2
        args.server_args = ["--device", "cpu", "--zoo=resnet_tiny", "--zoo-batch", "2"]
    else:
        if not args.models_dir:
            ap.error("--models-dir (with MODEL and TRAIN_MODEL packages), or --cpu")
        args.server_args = ["--device", args.device, "--models", args.models_dir, "--precision",
                            args.precision, "--pool-size", args.pool_size]
    os.makedirs(args.out, exist_ok=True)
    results = []
    for policy in args.policies.split(","):
        r = measure(args, policy, os.path.join(args.out, "preempt_%s.log" % policy))
        results.append(r)
        print(report(r), flush=True)
    with open(os.path.join(args.out, "preempt.json"), "w") as f:
        json.dump({"model": args.model, "train_model": args.train_model,
                   "train_batch": args.train_batch, "requests": args.requests, "gap_s": args.gap,
                   "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
