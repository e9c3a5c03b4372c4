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
  pipeswitch      --policy pipeswitch --grouping timed   the paper's system as shipped: the
                                                        optimal, block and per-layer groups
                                                        timed at registration, fastest kept
  optimal         --policy pipeswitch --grouping optimal the predicted-optimal groups alone
  blocks          --policy pipeswitch --grouping blocks  the original's hand-written block groups
  per-layer       --policy pipeswitch --grouping per-layer
  whole           --policy pipeswitch --grouping whole   one copy of the whole model, then compute
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
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from repro import measure, server  # noqa: E402  (shared with scripts/reproduce.sh)
from repro.configs import CONFIGS, FEW_REQUESTS  # noqa: E402


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
            if os.path.exists(log_path):
                os.remove(log_path)
            srv = server.Server(args.bin, ["--device", args.device, "--models", args.models_dir,
                                           "--precision", precision] + CONFIGS[config],
                                log_path, args.start_timeout)
            try:
                srv.start()
            except server.ServerError as e:
                print("FAILED %s %s: %s" % (config, precision, e), file=sys.stderr)
                continue
            link = server.parse_link(srv.banner) or link
            warmup, requests = FEW_REQUESTS.get(config, (args.warmup, args.requests))
            # Round-robin: every request follows another model's. A model that fails is
            # reported and left out of the later rounds; the others go on.
            per_model, _ = measure.round_robin(args.bin, srv.address, models, warmup + requests)
            srv.stop()
            for model, reg in server.parse_registered(server.read_log(log_path)).items():
                if config == "pipeswitch":
                    registered[(model, precision)] = reg
                elif (model, precision) not in registered:
                    registered[(model, precision)] = {"floor_us": reg["floor_us"],
                                                      "compute_us": reg["compute_us"]}
            for model in models:
                rows = per_model[model][warmup:]
                if not rows:
                    continue
                r = {"model": model, "precision": precision, "config": config}
                s = measure.summarize(rows)
                r.update({k: s[k] for k in ("ok", "requests", "mean_ms", "p99_ms", "min_ms",
                                            "server_compute_ms", "switch_ms", "startup_ms",
                                            "server_total_ms", "total_ms")})
                r["server_start_s"] = srv.started_s
                results.append(r)
                # after-GPU: the server's host work once the GPU is done (server_us - total_us).
                after = ((r["server_total_ms"] or 0) - (r["total_ms"] or 0)
                         if r["server_total_ms"] is not None else float("nan"))
                print("%-14s %-5s %-12s mean %8.2f ms  p99 %8.2f ms  server %8.2f ms  startup %6.2f ms"
                      "  after-GPU %5.2f ms" %
                      (config, precision, model, r["mean_ms"], r["p99_ms"], r["server_compute_ms"] or 0,
                       r["startup_ms"] or 0, after), flush=True)

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
