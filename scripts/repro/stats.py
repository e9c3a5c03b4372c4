"""Statistics of the paper's client: mean and p99 of the measured requests (the warm-up ones
dropped by the caller)."""
import statistics


def p99(values):
    """The 99th percentile, nearest rank: with 10 values, the largest."""
    v = sorted(values)
    if not v:
        raise ValueError("p99 of no values")
    return v[max(0, min(len(v) - 1, int(round(0.99 * len(v) + 0.5)) - 1))]


def summary(values):
    """{'n', 'mean', 'p99', 'min', 'max'} of a non-empty list."""
    return {"n": len(values), "mean": statistics.mean(values), "p99": p99(values),
            "min": min(values), "max": max(values)}


def mean_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None
