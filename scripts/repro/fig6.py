"""Figure 6: inference throughput and latency when training and inference alternate every
`cycle` seconds on one GPU (the paper: ResNet152, cycles 1, 2, 5, 10, 30 s).

Each series alternates a training phase (a background `TRAIN` job has the device; no inference
is sent) and an inference phase (inference requests back to back, each sent when the previous
reply came) of `cycle` seconds each, for at least one pair and until `window(cycle)` seconds
have passed. Throughput is the inference requests completed over the inference phases' time (a
request still running when its phase ends extends that phase), so a system that serves as fast
as the ready model reaches the ready model's throughput at every cycle.

  ready         no training at all, requests back to back for the window: the ceiling
  pipeswitch    one server (--policy pipeswitch), one training job for the whole series; the
                inference requests arrive while it trains, the server switches
  cache         the same with --policy cache (the model stays while the pool has room)
  kill-restart  the paper's stop-and-start: a training phase runs a server process with the
                training job and is killed at the phase's end; an inference phase starts a fresh
                server (--policy ready) and serves from when it listens to the phase's end; a
                restart longer than the cycle serves nothing.

Without training on the backend (TRAIN answers ERR UNSUPPORTED), every series but ready is
recorded as not available; no number is made up.
"""
import time

from repro import client, stats
from repro.server import Server, ServerError

SERIES = [
    ("ready", "ready model, inference only (no training): the ceiling"),
    ("pipeswitch", "PipeSwitch (--policy pipeswitch), training preempted"),
    ("cache", "PipeSwitch, model kept resident while inference continues (--policy cache)"),
    ("kill-restart", "stop-and-start: kill the training process, start a serving one"),
]
LABELS = dict(SERIES)


def _row(series, cycle, status, **kw):
    r = {"figure": "fig6", "series": series, "label": LABELS[series],
         "cycle_s": "" if cycle is None else cycle, "status": status, "inference_s": None,
         "requests": None, "throughput_per_s": None, "mean_ms": None, "p99_ms": None,
         "train_steps": None, "preemptions": None}
    r.update(kw)
    return r


def _measured(series, cycle, lat, inference_s, steps=None):
    if not lat:
        return _row(series, cycle, "ok", inference_s=inference_s, requests=0,
                    throughput_per_s=0.0, train_steps=steps)
    s = stats.summary(lat)
    return _row(series, cycle, "ok", inference_s=inference_s, requests=s["n"],
                throughput_per_s=s["n"] / inference_s, mean_ms=s["mean"], p99_ms=s["p99"],
                train_steps=steps)


def _serve_until(c, model, batch, payload, end, lat):
    """Requests back to back until `end` (monotonic); returns when the last reply came."""
    while time.monotonic() < end:
        ms, _ = c.infer(model, batch, payload)
        lat.append(ms)
    return time.monotonic()


def job_info(c, job):
    """JOBS' line of `job` as a dict ({} when it is not listed)."""
    return next((j for j in c.jobs() if j.get("job") == str(job)), {})


def _int(d, key):
    try:
        return int(d[key])
    except (KeyError, ValueError):
        return None


def _job_steps(c, job):
    return _int(job_info(c, job), "steps")


def run(ctx, progress):
    """All rows of figure 6. `ctx` is the harness's run context (repro.run.Context)."""
    rows = []
    model, batch, payload = ctx.fig6_model, ctx.batch, ctx.payloads.get(ctx.fig6_model)
    cycles = ctx.cycles
    for series, _ in SERIES:
        if series not in ctx.fig6_series:
            continue
        if series == "ready":
            window = ctx.window(max(cycles))
            with Server(ctx.bin, ctx.single_model_flags("ready", model),
                        ctx.log("fig6_ready")) as srv, client.TextClient(srv.address) as c:
                for _ in range(ctx.warmup):
                    c.infer(model, batch, payload)
                lat = []
                t0 = time.monotonic()
                t1 = _serve_until(c, model, batch, payload, t0 + window, lat)
            rows.append(_measured(series, None, lat, t1 - t0))
            progress("fig6 ready: %.1f requests/s over %.0f s" % (rows[-1]["throughput_per_s"],
                                                                  t1 - t0))
            continue
        if not ctx.training_supported:
            for cycle in cycles:
                rows.append(_row(series, cycle, ctx.training_missing))
            progress("fig6 %s: %s" % (series, ctx.training_missing))
            continue
        if series == "kill-restart":
            for cycle in cycles:
                rows.append(_kill_restart(ctx, cycle, model, batch, payload))
                progress("fig6 kill-restart, cycle %g s: %.1f requests/s" %
                         (cycle, rows[-1]["throughput_per_s"] or 0))
            continue
        with Server(ctx.bin, ctx.single_model_flags(series, model),
                    ctx.log("fig6_" + series)) as srv, client.TextClient(srv.address) as c:
            for _ in range(ctx.warmup):
                c.infer(model, batch, payload)
            job = c.train(ctx.train_model, ctx.train_batch)
            for cycle in cycles:
                lat, inference_s = [], 0.0
                j0 = job_info(c, job)
                steps0 = _int(j0, "steps")
                start = time.monotonic()
                while True:
                    time.sleep(cycle)                                  # training phase
                    phase = time.monotonic()
                    done = _serve_until(c, model, batch, payload, phase + cycle, lat)
                    inference_s += done - phase
                    if done - start >= ctx.window(cycle):
                        break
                j1 = job_info(c, job)
                steps1 = _int(j1, "steps")
                steps = steps1 - steps0 if steps0 is not None and steps1 is not None else None
                rows.append(_measured(series, cycle, lat, inference_s, steps))
                p0, p1 = _int(j0, "preemptions"), _int(j1, "preemptions")
                if p0 is not None and p1 is not None:
                    rows[-1]["preemptions"] = p1 - p0
                progress("fig6 %s, cycle %g s: %.1f requests/s, mean %.2f ms" %
                         (series, cycle, rows[-1]["throughput_per_s"], rows[-1]["mean_ms"] or 0))
            c.stop(job)
    return rows


def _kill_restart(ctx, cycle, model, batch, payload):
    lat, inference_s, steps = [], 0.0, 0
    start = time.monotonic()
    n = 0
    while True:
        n += 1
        phase = time.monotonic()                                      # training phase
        trainer = Server(ctx.bin, ctx.single_model_flags("ready", model),
                         ctx.log("fig6_kill-restart_%g_train" % cycle), start_timeout=600).start()
        with client.TextClient(trainer.address) as c:
            job = c.train(ctx.train_model, ctx.train_batch)
            time.sleep(max(0.0, phase + cycle - time.monotonic()))
            steps += _job_steps(c, job) or 0
        trainer.kill()
        phase = time.monotonic()                                      # inference phase
        end = phase + cycle
        try:
            srv = Server(ctx.bin, ctx.single_model_flags("ready", model),
                         ctx.log("fig6_kill-restart_%g_serve" % cycle),
                         start_timeout=cycle).start()
        except ServerError:
            srv = None                                                # not up within the phase
        done = time.monotonic()
        if srv is not None:
            with client.TextClient(srv.address) as c:
                done = _serve_until(c, model, batch, payload, end, lat)
            srv.kill()
        inference_s += max(done, end) - phase
        if time.monotonic() - start >= ctx.window(cycle):
            break
    return _measured("kill-restart", cycle, lat, inference_s, steps)
