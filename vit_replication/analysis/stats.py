"""Statistics of a few runs: mean and sample standard deviation, and Welch's t-test of two groups (the test that fits
3-5 seeds per arm with unequal spreads; its p-value comes from Student's t distribution, computed here with the
regularised incomplete beta function so that no statistics package is needed).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_se(values: Iterable[float]) -> tuple[float, float]:
    """Mean and its standard error, std / sqrt(n): the spread of a mean over seeds, the quantity
    Welch's t-test compares (0 for a single value)."""
    values = list(values)
    mean, std = mean_std(values)
    return mean, std / math.sqrt(len(values))


def welch_t_test(a: Iterable[float], b: Iterable[float]) -> tuple[float, float, float]:
    """Welch's t-test of mean(b) - mean(a): (t, degrees of freedom by Welch-Satterthwaite, two-sided
    p-value). Needs at least 2 values in each group; when both groups have no spread the difference
    is either exact (p 0 for unequal means) or none (p 1)."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's t-test needs at least 2 values per group, got {len(a)} and {len(b)}")
    (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
    var_a, var_b = std_a ** 2 / len(a), std_b ** 2 / len(b)
    if var_a + var_b == 0:
        return (math.copysign(math.inf, mean_b - mean_a) if mean_b != mean_a else 0.0), math.nan, \
            float(mean_b == mean_a)
    t = (mean_b - mean_a) / math.sqrt(var_a + var_b)
    df = (var_a + var_b) ** 2 / (var_a ** 2 / (len(a) - 1) + var_b ** 2 / (len(b) - 1))
    return t, df, t_two_sided_p(t, df)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    return regularized_beta(df / (df + t * t), df / 2, 0.5)


def regularized_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (Numerical Recipes, 6.4)."""
    if not 0 <= x <= 1:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0, 1):
        return float(x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1 - math.exp(log_front) * _beta_fraction(1 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float, steps: int = 300, eps: float = 1e-15) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz's method)."""
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, steps + 1):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < eps:
            break
    return result
