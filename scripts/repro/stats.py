"""Statistics of the paper's client: mean and p99 of the measured requests (the warm-up ones
dropped by the caller)."""
import math
import statistics


def p99(values):
    """The 99th percentile, nearest rank (the ceil(0.99 n)-th smallest): with up to 100 values,
    the largest but for n = 100 exactly."""
    v = sorted(values)
    if not v:
        raise ValueError("p99 of no values")
    return v[max(0, min(len(v), math.ceil(0.99 * len(v) - 1e-9)) - 1)]


def summary(values):
    """{'n', 'mean', 'p99', 'min', 'max'} of a non-empty list."""
    return {"n": len(values), "mean": statistics.mean(values), "p99": p99(values),
            "min": min(values), "max": max(values)}


def mean_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None
