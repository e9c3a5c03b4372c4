#!/usr/bin/env python3
"""The switching benchmark (issue 6): client-measured latency of a model that is NOT on the GPU
when its request arrives, under every policy of pipeswitchd, beside the ready model.

For each precision and configuration it starts `pipeswitchd --device 0 --models DIR --listen
127.0.0.1:0` with that configuration's flags, waits for "listening on", and for each model sends
--warmup + --requests sequential requests with `psnc infer MODEL` over loopback TCP (one
connection, synthetic input at the package's native batch). Each request's latency is psnc's
(send to reply), and the reply's server-side fields (switch_us, compute_us, startup_us) are kept.
The first --warmup requests of each model are dropped; mean and p99 are over the rest. Models are
requested round-robin (resnet152, inception_v3, bert_base, resnet152, ...), so every request
follows another model's. Under `cache` the pool holds all three models, so after the first round
every request finds its model resident: the repeated-request case that policy is for.

Configurations (pipeswitchd flags):
  ready           --policy ready                        the lower bound: every model resident
  pipeswitch      --policy pipeswitch --grouping optimal the paper's system, our optimal groups
  blocks          --policy pipeswitch --grouping blocks  the original's hand-written block groups
  per-layer       --policy pipeswitch --grouping per-layer
  stop-and-start  --policy stop-and-start               whole-model copy, then compute
  no-pool         --policy no-pool                      cuMemAlloc/cuMemFree per switch
  pageable        --policy pageable                     weights copied from pageable memory
  managed         --policy managed                      weights in CUDA managed memory
  cache           --policy cache                        resident while the pool has room
  kill-restart    --policy kill-restart                 a fresh process per request (1 warm-up
                                                        and 5 measured requests per model)
  ready-enqueue, pipeswitch-enqueue   the same with --graphs off (layer by layer from the host)

Also parsed from the server's log: the measured link (bandwidth and per-copy cost), and per model
the transfer floor (weight bytes over the measured bandwidth), the number of groups and the
predicted pipelined latency (docs/switching.md). Writes RESULTS/switch.csv and switch.json and
prints a table with the target check:
  pipeswitch <= 1.10 x max(ready, transfer floor) + 0.5 ms.

Usage: bench_switch.py --bin BIN_DIR --models-dir DIR --out RESULTS_DIR
                       [--models resnet152,inception_v3,bert_base] [--precisions tf32,fp32]
                       [--configs ready,pipeswitch,...] [--requests 20] [--warmup 10]
"""
import argparse
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "ready": ["--policy", "ready"],
    "pipeswitch": ["--policy", "pipeswitch", "--grouping", "optimal"],
    "blocks": ["--policy", "pipeswitch", "--grouping", "blocks"],
    "per-layer": ["--policy", "pipeswitch", "--grouping", "per-layer"],
    "stop-and-start": ["--policy", "stop-and-start"],
    "no-pool": ["--policy", "no-pool"],
    "pageable": ["--policy", "pageable"],
    "managed": ["--policy", "managed"],
    "cache": ["--policy", "cache"],
    "kill-restart": ["--policy", "kill-restart"],
    "ready-enqueue": ["--policy", "ready", "--graphs", "off"],
    "pipeswitch-enqueue": ["--policy", "pipeswitch", "--grouping", "optimal", "--graphs", "off"],
}
# kill-restart takes seconds per request: it runs only (warm-up, measured) requests per model.
FEW_REQUESTS = {"kill-restart": (1, 5)}

REQUEST_RE = re.compile(r"^request (\d+): ([0-9.]+) ms\s+(.*)$")
LINK_RE = re.compile(r"link ([0-9.]+) GB/s \+ ([0-9.]+) us/copy")
REGISTERED_RE = re.compile(
    r"registered (\S+): (\d+) layers, (\d+) groups?.*?compute (\d+) us, predicted pipelined (\d+) us, "
    r"transfer floor (\d+) us")


def p99(values):
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(round(0.99 * len(v) + 0.5)) - 1))]


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def start_server(args, flags, precision, log_path):
    cmd = [os.path.join(args.bin, "pipeswitchd"), "--device", args.device, "--models", args.models_dir,
           "--listen", "127.0.0.1:0", "--precision", precision] + flags
    log = open(log_path, "w")
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    banner = []
    deadline = time.time() + args.start_timeout
    address = None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        banner.append(line.rstrip())
        log.write(line)
        log.flush()
        m = re.match(r"listening on (\S+)", line)
        if m:
            address = m.group(1)
            break
    if address is None:
        proc.kill()
        proc.wait()
        raise RuntimeError("pipeswitchd did not start (see %s):\n%s" % (log_path, "\n".join(banner)))
    return proc, address, banner, log


def stop_server(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
        log.write(out or "")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def run_client(args, address, model, count):
    cmd = [os.path.join(args.bin, "psnc"), "--server", address, "infer", model, "--repeat", str(count)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    rows = []
    for line in out.stdout.splitlines():
        m = REQUEST_RE.match(line)
        if m:
            rows.append((float(m.group(2)), m.group(3)))
    if out.returncode != 0 or len(rows) != count:
        raise RuntimeError("psnc infer %s failed (exit %d):\n%s\n%s" %
                           (model, out.returncode, out.stdout[-2000:], out.stderr[-2000:]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="folder with pipeswitchd and psnc")
    ap.add_argument("--models-dir", required=True, help="folder of .psm packages (named after the models)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="resnet152,inception_v3,bert_base")
    ap.add_argument("--precisions", default="tf32,fp32")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--start-timeout", type=float, default=600)
    ap.add_argument("--device", default="0", help="pipeswitchd --device (cpu: a dry run of the script)")
    args = ap.parse_args()
    models = args.models.split(",")
    os.makedirs(args.out, exist_ok=True)
    results = []
    link = {}
    registered = {}
    for precision in args.precisions.split(","):
        for config in args.configs.split(","):
            if config not in CONFIGS:
                sys.exit("bench_switch: unknown config '%s' (known: %s)" % (config, ", ".join(CONFIGS)))
            log_path = os.path.join(args.out, "server_%s_%s.log" % (config, precision))
            t0 = time.time()
            try:
                proc, address, banner, log = start_server(args, CONFIGS[config], precision, log_path)
            except RuntimeError as e:
                print("FAILED %s %s: %s" % (config, precision, e), file=sys.stderr)
                continue
            started_s = time.time() - t0
            for line in banner:
                m = LINK_RE.search(line)
                if m:
                    link = {"gbps": float(m.group(1)), "copy_us": float(m.group(2))}
            per_model = {m: [] for m in models}
            warmup, requests = FEW_REQUESTS.get(config, (args.warmup, args.requests))
            failed = set()
            # Round-robin: every request follows another model's. A model that fails is
            # reported and left out of the later rounds; the others go on.
            for i in range(warmup + requests):
                for model in models:
                    if model in failed:
                        continue
                    try:
                        per_model[model] += run_client(args, address, model, 1)
                    except RuntimeError as e:
                        print("FAILED %s %s: %s" % (config, precision, e), file=sys.stderr)
                        failed.add(model)
                        per_model[model] = []
            stop_server(proc, log)
            with open(log_path) as f:
                for line in f:
                    m = REGISTERED_RE.search(line)
                    if m and config == "pipeswitch":
                        registered[(m.group(1), precision)] = {
                            "layers": int(m.group(2)), "groups": int(m.group(3)),
                            "compute_us": int(m.group(4)), "predicted_us": int(m.group(5)),
                            "floor_us": int(m.group(6))}
                    elif m and (m.group(1), precision) not in registered:
                        registered[(m.group(1), precision)] = {
                            "floor_us": int(m.group(6)), "compute_us": int(m.group(4))}
            for model in models:
                rows = per_model[model][warmup:]
                if not rows:
                    continue
                lat = [r[0] for r in rows]
                server = [fields(r[1]) for r in rows]
                ok = all(r[1].startswith("OK") for r in rows)

                def mean_field(key):
                    vals = [float(s[key]) for s in server if key in s]
                    return statistics.mean(vals) / 1000.0 if vals else None
                results.append({
                    "model": model, "precision": precision, "config": config, "ok": ok,
                    "requests": len(lat), "mean_ms": statistics.mean(lat), "p99_ms": p99(lat),
                    "min_ms": min(lat),
                    "server_compute_ms": mean_field("compute_us"),
                    "switch_ms": mean_field("switch_us"),
                    "startup_ms": mean_field("startup_us"),
                    "server_start_s": started_s,
                })
                r = results[-1]
                print("%-14s %-5s %-12s mean %8.2f ms  p99 %8.2f ms  server %8.2f ms  startup %6.2f ms" %
                      (config, precision, model, r["mean_ms"], r["p99_ms"], r["server_compute_ms"] or 0,
                       r["startup_ms"] or 0), flush=True)

    with open(os.path.join(args.out, "switch.json"), "w") as f:
        json.dump({"link": link, "registered": {"%s/%s" % k: v for k, v in registered.items()},
                   "results": results}, f, indent=1)
    with open(os.path.join(args.out, "switch.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0].keys()) if results else ["model"])
        w.writeheader()
        w.writerows(results)

    # The table: one row per (model, precision), one column per config (mean / p99 ms).
    print()
    print("link: %.1f GB/s, %.1f us per copy (measured by pipeswitchd at start-up)" %
          (link.get("gbps", 0), link.get("copy_us", 0)))
    configs = [c for c in args.configs.split(",") if any(r["config"] == c for r in results)]
    header = "| model | prec | floor | groups | predicted | " + " | ".join(configs) + " | pipeswitch / max(ready, floor) | target |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    failed_target = False
    for precision in args.precisions.split(","):
        for model in models:
            by = {r["config"]: r for r in results if r["model"] == model and r["precision"] == precision}
            reg = registered.get((model, precision), {})
            floor = reg.get("floor_us", 0) / 1000.0
            cells = []
            for c in configs:
                r = by.get(c)
                cells.append("%.2f / %.2f" % (r["mean_ms"], r["p99_ms"]) if r else "-")
            verdict, ratio = "-", "-"
            if "ready" in by and "pipeswitch" in by:
                bound = max(by["ready"]["mean_ms"], floor)
                ratio = "%.3f" % (by["pipeswitch"]["mean_ms"] / bound)
                target = 1.10 * bound + 0.5
                ok = by["pipeswitch"]["mean_ms"] <= target
                failed_target |= not ok
                verdict = "%s (<= %.2f)" % ("met" if ok else "MISSED", target)
            print("| %s | %s | %.2f | %s | %s | %s | %s | %s |" % (
                model, precision, floor, reg.get("groups", "-"),
                "%.2f" % (reg["predicted_us"] / 1000.0) if "predicted_us" in reg else "-",
                " | ".join(cells), ratio, verdict))
    return 1 if failed_target else 0


if __name__ == "__main__":
    sys.exit(main())
