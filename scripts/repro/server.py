"""Starting and stopping pipeswitchd for one configuration, and what its log says.

A Server runs `pipeswitchd ... --listen 127.0.0.1:0`, waits for its "listening on HOST:PORT"
line (the real port), and writes the command, the banner and the log (stderr) to one file.
stop() sends SIGTERM (graceful: queued work is answered, training jobs stopped) and waits.
"""
import os
import queue
import re
import signal
import subprocess
import threading
import time

LINK_RE = re.compile(r"link ([0-9.]+) GB/s \+ ([0-9.]+) us/copy")
REGISTERED_RE = re.compile(
    r"registered (\S+): (\d+) layers, (\d+) groups?.*?compute (\d+) us, predicted pipelined (\d+) us, "
    r"transfer floor (\d+) us")
LISTENING_RE = re.compile(r"listening on (\S+)")


def find_tool(bin_dir, name):
    """`name` in a bundle's bin/ (BIN/name) or a build tree (BIN/tools/name/name, BIN/name/name)."""
    for path in (os.path.join(bin_dir, name), os.path.join(bin_dir, name, name),
                 os.path.join(bin_dir, "tools", name, name)):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("no executable %s under %s (looked in BIN/, BIN/%s/, BIN/tools/%s/)"
                            % (name, bin_dir, name, name))


class ServerError(RuntimeError):
    pass


class Server:
    """One pipeswitchd process. Use as a context manager, or start() / stop()."""

    def __init__(self, bin_dir, args, log_path, start_timeout=600):
        self.cmd = [find_tool(bin_dir, "pipeswitchd")] + list(args) + ["--listen", "127.0.0.1:0"]
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.proc = None
        self.address = None
        self.banner = []
        self.started_s = None
        self._log = None
        self._drain = None
        self._listening = False

    def start(self):
        t0 = time.monotonic()
        self._log = open(self.log_path, "a")
        self._log.write("$ " + " ".join(self.cmd) + "\n")
        self._log.flush()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self._log, text=True)
        # A thread copies stdout to the log (so the pipe never fills) and hands the lines over
        # until the server listens; the wait below has a deadline even when no line comes.
        lines = queue.Queue()
        self._drain = threading.Thread(target=self._copy_stdout, args=(lines,), daemon=True)
        self._drain.start()
        deadline = t0 + self.start_timeout
        while self.address is None:
            left = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(0.0, left)) if left > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                break
            self.banner.append(line.rstrip())
            m = LISTENING_RE.match(line)
            if m:
                self.address = m.group(1)
        self._listening = True
        if self.address is None:
            self.proc.kill()
            self.proc.wait()
            self._drain.join(timeout=5)
            self._log.close()
            raise ServerError("pipeswitchd did not start within %.0f s (exit %s; log %s):\n%s" %
                              (self.start_timeout, self.proc.returncode, self.log_path,
                               "\n".join(self.banner[-20:])))
        self.started_s = time.monotonic() - t0
        return self

    def _copy_stdout(self, lines):
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            if not self._listening:
                lines.put(line)
        lines.put(None)

    def stop(self, timeout=60):
        """SIGTERM and wait; SIGKILL after `timeout` s. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._drain is not None:
            self._drain.join(timeout=5)
        self._log.write("# exit status %s\n" % self.proc.returncode)
        self._log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL at once (the kill half of kill-and-restart)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        return self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def parse_link(lines):
    """{'gbps', 'copy_us'} from the GPU backend's banner (its start-up link probe), or {}."""
    for line in lines:
        m = LINK_RE.search(line)
        if m:
            return {"gbps": float(m.group(1)), "copy_us": float(m.group(2))}
    return {}


def parse_registered(lines):
    """Per model, what the GPU backend printed when it registered it (docs/switching.md)."""
    out = {}
    for line in lines:
        m = REGISTERED_RE.search(line)
        if m:
            out[m.group(1)] = {"layers": int(m.group(2)), "groups": int(m.group(3)),
                               "compute_us": int(m.group(4)), "predicted_us": int(m.group(5)),
                               "floor_us": int(m.group(6))}
    return out


def read_log(path):
    with open(path, errors="replace") as f:
        return f.read().splitlines()
