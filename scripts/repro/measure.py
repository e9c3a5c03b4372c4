"""The request loop of the switch measurements, shared by scripts/bench_switch.py and the
reproduction harness: round-robin requests over the models with `psnc infer`, so every request
follows another model's (its model is not resident when it arrives, unless the policy keeps it),
the first `warmup` rounds dropped, mean and p99 over the rest."""
import statistics
import sys
import time

from repro import client, stats


def round_robin(bin_dir, address, models, rounds, batch=None, inputs=None, gap_s=0.0,
                log=sys.stderr):
    """`rounds` rounds of one request per model, `gap_s` seconds of quiet before each (so a
    background training job has the device again when the request comes). Returns ({model: [(ms, reply line)]}, failed):
    a model whose request fails is reported on `log`, left out of the later rounds and its
    list emptied; `failed` maps it to the error."""
    per_model = {m: [] for m in models}
    failed = {}
    for _ in range(rounds):
        for model in models:
            if model in failed:
                continue
            if gap_s:
                time.sleep(gap_s)
            try:
                per_model[model] += client.psnc_infer(
                    bin_dir, address, model, 1, batch=batch,
                    input_file=(inputs or {}).get(model))
            except (client.ClientError, OSError) as e:
                print("FAILED %s: %s" % (model, e), file=log)
                failed[model] = str(e).splitlines()[0]
                per_model[model] = []
    return per_model, failed


def summarize(rows):
    """Client latency (mean, p99, min, n) and the server's mean timings (ms) of measured rows."""
    lat = [r[0] for r in rows]
    server = [client.fields(r[1]) for r in rows]
    s = stats.summary(lat)

    def mean_field(key):
        vals = [float(f[key]) for f in server if key in f]
        return statistics.mean(vals) / 1000.0 if vals else None
    return {"ok": all(r[1].startswith("OK") for r in rows), "requests": s["n"],
            "mean_ms": s["mean"], "p99_ms": s["p99"], "min_ms": s["min"],
            "server_compute_ms": mean_field("compute_us"), "switch_ms": mean_field("switch_us"),
            "startup_ms": mean_field("startup_us"),
            # The server's whole share (parsed -> reply line): less total_us it is the host's
            # work after the GPU; the client's latency less it is the network and the client.
            "server_total_ms": mean_field("server_us"), "total_ms": mean_field("total_us")}
