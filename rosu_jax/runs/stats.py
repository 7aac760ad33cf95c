"""Statistics of results over seeds: mean ± std, and paired confidence intervals of differences.

Methods are compared *paired over seeds*: for seed s both ran on the same split from the same original model, so
the difference d_s = x_s − y_s removes what the seed does to both. The 95% interval is the t-interval
mean(d) ± t_{0.975, n−1}·sd(d)/√n; with fewer than two paired seeds there is no interval and no ranking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for one value)."""
    x = np.asarray(values, np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def paired_interval(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """(mean, low, high) of the t-interval of paired differences, or None for fewer than two of them."""
    d = np.asarray(differences, np.float64)
    if d.size < 2:
        return None
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1)) * sd / math.sqrt(d.size)
    return mean, mean - half, mean + half


def excludes_zero(interval: tuple[float, float, float] | None) -> bool:
    return interval is not None and (interval[1] > 0 or interval[2] < 0)
