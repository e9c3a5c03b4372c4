"""What the results were measured on: GPU, driver, the pinned link the server measured, CPU,
software versions, the commit. Written to machine.json beside the CSVs."""
import datetime
import os
import platform
import subprocess


def _run(cmd, timeout=30):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def gpu():
    """[{'name', 'driver', 'memory'}] from nvidia-smi, [] without one."""
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader"])
    gpus = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(repo):
    """The checkout's commit; in a bundle (scripts/bundle.sh, no .git) the COMMIT file it wrote."""
    commit = _run(["git", "-C", repo, "describe", "--always", "--dirty"])
    if commit:
        return commit
    try:
        with open(os.path.join(repo, "COMMIT")) as f:
            return f.read().strip() or None
    except OSError:
        return None


def binaries_commit(bin_dir, repo):
    """The commit the binaries in `bin_dir` were built from: a bundle's COMMIT file (bin/'s
    parent), else the checkout's (a build folder of it). On a lent device the checkout's git
    metadata can be older than its files, so a bundle's file is the one to trust."""
    try:
        with open(os.path.join(bin_dir, os.pardir, "COMMIT")) as f:
            return f.read().strip() or None
    except (OSError, TypeError):
        return git_commit(repo)


def describe(repo, link=None, torch_version=None, cuda_version=None):
    """The machine record. `link` is {'gbps', 'copy_us'} from pipeswitchd's start-up probe."""
    gpus = gpu()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "gpu": gpus[0]["name"] if gpus else None,
        "gpu_count": len(gpus),
        "gpu_memory": gpus[0]["memory"] if gpus else None,
        "driver": gpus[0]["driver"] if gpus else None,
        "pinned_h2d_gbps": (link or {}).get("gbps"),
        "copy_fixed_us": (link or {}).get("copy_us"),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "torch": torch_version,
        "cuda": cuda_version,
        "commit": git_commit(repo),
    }


def merge(old, new):
    """machine.json after an --append run: the new record, with what the new run did not learn
    (PyTorch's version when it ran no peers) kept from the old one, and every command's link
    probe in "links" (the link is measured once per command; it varies between them)."""
    merged = dict(new)
    for k, v in old.items():
        if merged.get(k) is None and k != "links":
            merged[k] = v
    links = old.get("links") or [{"gbps": old.get("pinned_h2d_gbps"),
                                  "copy_us": old.get("copy_fixed_us")}]
    merged["links"] = links + [{"gbps": new.get("pinned_h2d_gbps"),
                                "copy_us": new.get("copy_fixed_us")}]
    return merged
