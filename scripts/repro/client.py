"""Clients of pipeswitchd over loopback TCP.

- psnc_infer(): the latency client: `psnc infer` sends the request(s) and measures each from
  send to reply in C++ (what scripts/bench_switch.py has always used).
- TextClient: one text-protocol connection from Python (docs/protocol.md) for what psnc does
  not do in one call: TRAIN / JOBS / STOP, MODELS, and request loops bounded by time (figure 6).
- make_input(): an input tensor of the right size for a model, for clients that send data as
  the paper's did.
"""
import array
import sys
import random
import socket
import subprocess
import time

from repro.server import find_tool


class ClientError(RuntimeError):
    pass


class Unsupported(ClientError):
    """The server answered ERR UNSUPPORTED (e.g. TRAIN on a backend without training)."""


def fields(line):
    """key=value fields of a reply line (the status word dropped)."""
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def psnc_infer(bin_dir, address, model, count=1, batch=None, input_file=None, timeout=600):
    """`psnc --server ADDRESS infer MODEL --repeat COUNT`: [(latency_ms, reply line), ...]."""
    cmd = [find_tool(bin_dir, "psnc"), "--server", address, "infer", model, "--repeat", str(count)]
    if batch:
        cmd += ["--batch", str(batch)]
    if input_file:
        cmd += ["--input", input_file]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rows = []
    for line in out.stdout.splitlines():
        if line.startswith("request "):
            head, _, reply = line.partition("  ")
            ms = head.split(": ", 1)[1].split()[0]
            rows.append((float(ms), reply.strip()))
    if out.returncode != 0 or len(rows) != count:
        raise ClientError("psnc infer %s failed (exit %d):\n%s\n%s" %
                          (model, out.returncode, out.stdout[-2000:], out.stderr[-2000:]))
    return rows


class TextClient:
    """One connection speaking the text protocol; every call waits for its reply."""

    def __init__(self, address, timeout=600):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        try:
            self.sock.sendall(b"QUIT\n")
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ClientError("the server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("ascii", "replace").rstrip("\r")

    def _read_bytes(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(1 << 16, n - len(self.buf)))
            if not chunk:
                raise ClientError("the server closed the connection inside a payload")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def command(self, line, payload=None):
        """Sends one request; returns (status line, payload bytes or b'')."""
        data = line.encode("ascii")
        if payload is not None:
            data += b" bytes=%d" % len(payload)
        self.sock.sendall(data + b"\n" + (payload or b""))
        status = self._read_line()
        body = b""
        f = fields(status) if status.startswith("OK") else {}
        if "bytes" in f:
            body = self._read_bytes(int(f["bytes"]))
        return status, body

    @staticmethod
    def check(status, what):
        if status.startswith("ERR UNSUPPORTED"):
            raise Unsupported(status)
        if not status.startswith("OK"):
            raise ClientError("%s: %s" % (what, status))
        return fields(status)

    def infer(self, model, batch=None, payload=None):
        """One inference; (latency_ms from send to the reply line, reply fields)."""
        line = "INFER " + model + (" batch=%d" % batch if batch else "")
        t0 = time.perf_counter()
        status, _ = self.command(line, payload)
        ms = (time.perf_counter() - t0) * 1e3
        return ms, self.check(status, line)

    def train(self, model, batch=None, steps=None):
        """TRAIN; returns the job id. Raises Unsupported when the backend cannot train."""
        line = "TRAIN " + model + (" batch=%d" % batch if batch else "") + \
            (" steps=%d" % steps if steps else "")
        return self.check(self.command(line)[0], line)["job"]

    def stop(self, job):
        line = "STOP %s" % job
        return self.check(self.command(line)[0], line)

    def jobs(self):
        status, body = self.command("JOBS")
        self.check(status, "JOBS")
        return [fields("- " + l) for l in body.decode().splitlines() if l.strip()]

    def models(self):
        """MODELS: {name: {'batch': N, 'inputs': [(name, dtype, [dims])], ...}}."""
        status, body = self.command("MODELS")
        self.check(status, "MODELS")
        out = {}
        for l in body.decode().splitlines():
            f = fields("- " + l)
            inputs = []
            for spec in f.get("inputs", "").split(","):
                if spec:
                    name, dtype, dims = spec.split(":")
                    inputs.append((name, dtype, [int(d) for d in dims.split("x")]))
            f["inputs"] = inputs
            f["batch"] = int(f.get("batch", 1))
            out[f["name"]] = f
        return out


def make_input(info, batch, seed=1234):
    """Bytes of the model's inputs at `batch` (a multiple of its native batch), concatenated in
    MODELS order: floats uniform in [-1, 1), token ids below 100 (the smallest vocabulary of the
    zoo), token types 0/1. Float data is a random block tiled, so big inputs are made fast."""
    rng = random.Random(seed)
    parts = []
    for name, dtype, dims in info["inputs"]:
        count = batch // info["batch"] * _product(dims)
        if dtype == "float32":
            block = array.array("f", (rng.uniform(-1, 1) for _ in range(min(count, 1 << 16))))
            reps, rest = divmod(count, len(block))
            a = block * reps + block[:rest]
        elif dtype == "int64":
            high = 2 if "type" in name else 100
            a = array.array("q", (rng.randrange(high) for _ in range(count)))
        else:
            raise ClientError("make_input: input %s has dtype %s" % (name, dtype))
        if sys.byteorder != "little":
            a.byteswap()
        parts.append(a.tobytes())
    return b"".join(parts)


def _product(dims):
    n = 1
    for d in dims:
        n *= d
    return n
