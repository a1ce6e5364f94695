"""The statistics of the report: percentiles, the hierarchical bootstrap, comparisons.

numpy only. A case is measured in one or more independent worker processes, each timing
a number of rounds; ``samples`` below is always a sequence with one array of per-call
times per process.

The headline latency of a case is the median over processes of the per-process median
round time. Its 95% confidence interval comes from a two-level (hierarchical) bootstrap:
resample the processes with replacement, then the rounds within each resampled process,
and take the median of the resampled per-process medians; repeat ``N_RESAMPLES`` times
and take the 2.5th and 97.5th percentiles.

Why not a one-level bootstrap of the per-process medians (``scipy.stats.bootstrap``)?
With three processes its percentile interval is just [min, max] of three numbers (the
resampled median of three equals the smallest value with probability 7/27, far above
2.5%), and with one process it has zero width. Resampling the rounds as well brings the
within-process noise into the interval, so it is never degenerate, and it still works
with one process: then it describes the noise of that one process only, not the
process-to-process variation a second run would see (``Estimate.within_process_only``).

Every resample is seeded (:func:`seed_for`), so a report is reproducible to the digit.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Bootstrap resamples per case. The Monte Carlo error of a 2.5% percentile with 2000
#: resamples is about 0.35 percentage points of coverage: far below what matters here.
N_RESAMPLES = 2000
CONFIDENCE = 0.95
#: Base of every case's seed (:func:`seed_for`).
SEED = 20_240_601
#: A comparison counts a change only when its size is at least this (new/old >= 1.05 or
#: <= 1/1.05), on top of being significant.
MIN_EFFECT = 0.05

Samples = Sequence[np.ndarray]


def seed_for(*parts: object) -> int:
    """A stable seed for the bootstrap of one case (the same on every machine and
    Python process: ``hash()`` is salted, CRC-32 is not)."""
    return SEED ^ zlib.crc32("\x1f".join(map(str, parts)).encode())


def _clean(samples: Samples) -> list[np.ndarray]:
    out = [np.sort(np.asarray(s, dtype=float).ravel()) for s in samples]
    out = [s[np.isfinite(s)] for s in out]
    return [s for s in out if s.size]


def process_medians(samples: Samples) -> np.ndarray:
    """The median of each process's rounds."""
    return np.array([np.median(s) for s in _clean(samples)])


def percentiles(samples: Samples, q: Sequence[float]) -> np.ndarray:
    """Percentiles ``q`` of every round of every process, pooled (NaN without data)."""
    clean = _clean(samples)
    if not clean:
        return np.full(len(q), np.nan)
    return np.percentile(np.concatenate(clean), q)


def resampled_medians(sorted_x: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` independent draws of the median of a bootstrap resample of ``sorted_x``.

    Exact, and O(1) per draw whatever the number of rounds: a resample is ``n`` draws
    ``x[ceil(n U_i)]`` with ``U_i`` uniform on (0, 1); the map is monotone, so its k-th
    order statistic is ``x[ceil(n U_(k))]``, and the k-th of ``n`` uniforms is
    Beta(k, n + 1 - k). For an even ``n`` the (k+1)-th given the k-th is
    ``U_(k) + (1 - U_(k)) Beta(1, n - k)`` (the least of the n - k uniforms above it), and
    the median is the mean of the two (numpy's convention).
    """
    n = sorted_x.size
    if n == 1 or m == 0:
        return np.full(m, sorted_x[0] if n else np.nan)
    k = (n + 1) // 2

    def at(u: np.ndarray) -> np.ndarray:
        return sorted_x[np.minimum((u * n).astype(np.int64), n - 1)]

    u = rng.beta(k, n + 1 - k, size=m)
    if n % 2:
        return at(u)
    v = u + (1.0 - u) * rng.beta(1, n - k, size=m)
    return (at(u) + at(v)) / 2


def bootstrap_p50(samples: Samples, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``n_resamples`` hierarchical-bootstrap draws of the median of per-process medians.

    Level 1 draws as many processes as there are, with replacement; level 2 resamples
    the rounds of each drawn process (independently each time it is drawn) and takes
    their median; the draw is the median of those. Empty without data.
    """
    clean = _clean(samples)
    if not clean:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    k = len(clean)
    pick = rng.integers(0, k, size=(n_resamples, k))
    medians = np.empty((n_resamples, k))
    for i, x in enumerate(clean):
        chosen = pick == i
        medians[chosen] = resampled_medians(x, int(chosen.sum()), rng)
    return np.median(medians, axis=1)


def interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of bootstrap ``draws``."""
    if draws.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Estimate:
    """The headline median of one case and what it rests on."""

    p50: float  # median over processes of the per-process medians
    low: float  # 95% hierarchical-bootstrap interval
    high: float
    processes: int  # processes with rounds
    rounds: int  # rounds over all of them
    spread_pct: float  # (max - min) / p50 of the per-process medians, in % (NaN: 1 process)
    draws: np.ndarray  # the bootstrap draws (for ratios of cases)

    @property
    def within_process_only(self) -> bool:
        """One process: the interval holds the noise within it, not between processes."""
        return self.processes == 1

    def overlaps(self, other: Estimate) -> bool:
        return not (self.high < other.low or other.high < self.low)


def estimate(samples: Samples, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Estimate:
    clean = _clean(samples)
    if not clean:
        return Estimate(math.nan, math.nan, math.nan, 0, 0, math.nan, np.empty(0))
    medians = process_medians(clean)
    p50 = float(np.median(medians))
    draws = bootstrap_p50(clean, n_resamples, seed)
    lo, hi = interval(draws)
    spread = math.nan  # one process: nothing to say about the variation between them
    if len(clean) > 1 and p50 > 0:
        spread = 100 * float(medians.max() - medians.min()) / p50
    return Estimate(p50, lo, hi, len(clean), sum(s.size for s in clean), spread, draws)


# -- ratios and comparisons ----------------------------------------------------------------
@dataclass(frozen=True)
class Ratio:
    value: float  # numerator p50 / denominator p50
    low: float
    high: float


def ratio(numerator: Estimate, denominator: Estimate) -> Ratio:
    """``numerator.p50 / denominator.p50`` with a 95% interval from the two estimates'
    bootstrap draws, paired index by index. The two must come from independent seeds
    (different cases, or different roles in :func:`seed_for`), so the pairs are
    independent draws of both sides."""
    value = numerator.p50 / denominator.p50 if denominator.p50 > 0 else math.nan
    n = min(numerator.draws.size, denominator.draws.size)
    if n == 0 or not math.isfinite(value):
        return Ratio(value, math.nan, math.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = numerator.draws[:n] / denominator.draws[:n]
    draws = draws[np.isfinite(draws)]
    lo, hi = interval(draws)
    return Ratio(value, lo, hi)


# -- the regression test -------------------------------------------------------------------
#: The family-wise error rate of a comparison: the chance that two runs of the same build
#: on the same machine flag any case at all.
ALPHA = 0.05
#: Per-process log medians are floored at this variance, so that identical processes
#: (simulated data, a coarse clock) do not give a zero variance and an infinite t.
_MIN_VAR = 1e-10


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x (Newton's method on 1/trigamma, as limma does)."""
    from scipy.special import polygamma

    if x > 1e7:
        return 1 / math.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(polygamma(1, y))
        step = tri * (1 - tri / x) / float(polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def variance_prior(variances: np.ndarray, dfs: np.ndarray) -> tuple[float, float]:
    """``(d0, s0^2)``: the scaled inverse-chi-square prior of the cases' variances,
    fitted by moments of their logarithms (Smyth 2004, limma's ``fitFDist``). ``d0`` is
    how many degrees of freedom the prior is worth (``inf``: every case has the same
    variance, ``s0^2``)."""
    from scipy.special import digamma, polygamma

    half = dfs / 2
    e = np.log(np.maximum(variances, _MIN_VAR)) - digamma(half) + np.log(half)
    mean = float(e.mean())
    spread = float(e.var(ddof=1)) - float(polygamma(1, half).mean()) if e.size > 1 else 0.0
    if spread <= 0:
        return math.inf, math.exp(mean)
    d0 = 2 * _trigamma_inverse(spread)
    return d0, math.exp(mean + float(digamma(d0 / 2)) - math.log(d0 / 2))


@dataclass(frozen=True)
class ChangeTests:
    """Each case's test of a change: the two-sided p-value, the standard error of its
    log ratio and the degrees of freedom of that error (``inf``: a normal test)."""

    p: np.ndarray
    se: np.ndarray
    df: np.ndarray


def change_tests(pairs: Sequence[tuple[Samples, Samples, Estimate, Estimate]]) -> ChangeTests:
    """A two-sided test per case that the new run's speed differs from the old's.

    ``pairs`` holds each case's new and old samples and their estimates. A case with two
    or more processes on both sides gets a **moderated t-test** on the logarithms of its
    per-process medians (Smyth 2004, the test of limma): its own pooled variance of the
    process medians is shrunk towards a prior fitted to every such case of the
    comparison, so three processes a side still give a test with many degrees of
    freedom, and a case whose processes disagree (a machine fast one minute and slow the
    next) gets a wide one. A case measured in one process on either side has no variance
    between processes to go on: its p-value is the normal approximation of its bootstrap
    ratio on the log scale (the noise within its processes only), which assumes the
    machine was as steady between the runs as within them. NaN without rounds.
    """
    from scipy.stats import norm, t

    n = len(pairs)
    p, se, dfs = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.inf)
    diffs = np.full(n, np.nan)
    moderated: list[tuple[int, float, int]] = []  # i, s2, df
    for i, (new, old, new_est, old_est) in enumerate(pairs):
        ln, lo = np.log(process_medians(new)), np.log(process_medians(old))
        if ln.size >= 2 and lo.size >= 2:
            df = ln.size + lo.size - 2
            s2 = (((ln - ln.mean()) ** 2).sum() + ((lo - lo.mean()) ** 2).sum()) / df
            moderated.append((i, max(s2, _MIN_VAR), df))
            diffs[i] = ln.mean() - lo.mean()
            se[i] = math.sqrt(1 / ln.size + 1 / lo.size)  # times the root variance, below
        elif min(new_est.rounds, old_est.rounds) >= 2 and new_est.p50 > 0 and old_est.p50 > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                spread = np.var(np.log(new_est.draws)) + np.var(np.log(old_est.draws))
            diffs[i] = math.log(new_est.p50 / old_est.p50)
            se[i] = math.sqrt(max(float(spread), _MIN_VAR))
    if moderated:
        idx, s2, df = (np.array(c) for c in zip(*moderated, strict=True))
        idx = idx.astype(int)
        d0, s0 = variance_prior(s2, df)
        if math.isinf(d0):
            se[idx] *= math.sqrt(s0)
        else:
            se[idx] *= np.sqrt((d0 * s0 + df * s2) / (d0 + df))
            dfs[idx] = d0 + df
    tested = np.isfinite(se)
    finite_df = tested & np.isfinite(dfs)
    normal = tested & ~finite_df
    z = np.abs(diffs) / np.where(tested, se, 1.0)
    p[normal] = 2 * norm.sf(z[normal])
    p[finite_df] = 2 * t.sf(z[finite_df], dfs[finite_df])
    return ChangeTests(p, se, dfs)


def change_pvalues(pairs: Sequence[tuple[Samples, Samples, Estimate, Estimate]]) -> np.ndarray:
    """The p-values of :func:`change_tests`."""
    return change_tests(pairs).p


def detectable_change(
    se: np.ndarray, df: np.ndarray, tests: int, min_effect: float = MIN_EFFECT
) -> np.ndarray:
    """The smallest slowdown (as a fraction: 0.2 is 20%) that :func:`verdict` would flag
    in each case of a comparison of ``tests`` cases, given the case's standard error.

    Holm's first step is Bonferroni's: a case changed alone among unchanged ones is
    flagged when its p-value is <= ALPHA / tests, i.e. when its log ratio reaches the
    two-sided critical value times its standard error; never below ``min_effect``. (When
    several cases change at once Holm flags somewhat smaller changes, so this is the
    guarantee, not the limit.) NaN where the case has no test.
    """
    from scipy.stats import norm, t

    se, df = np.asarray(se, dtype=float), np.asarray(df, dtype=float)
    q = 1 - ALPHA / (2 * max(tests, 1))
    with np.errstate(invalid="ignore"):
        crit = np.where(np.isfinite(df), t.ppf(q, np.where(np.isfinite(df), df, 1.0)), norm.ppf(q))
        return np.maximum(np.expm1(crit * se), min_effect)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: a case is significant at family-wise level ``a``
    where its adjusted p-value is <= ``a`` (NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


VERDICTS = ("slower", "faster", "same", "n/a")


def verdict(ratio_value: float, p_adjusted: float, min_effect: float = MIN_EFFECT) -> str:
    """``slower`` / ``faster`` when the change is significant after Holm's adjustment
    over every case of the comparison (family-wise error <= :data:`ALPHA`) AND at least
    ``min_effect`` (new/old >= 1 + min_effect, or <= 1 / (1 + min_effect)); ``same``
    otherwise; ``n/a`` without a test (no rounds on a side)."""
    if not (math.isfinite(p_adjusted) and math.isfinite(ratio_value)):
        return "n/a"
    if p_adjusted > ALPHA:
        return "same"
    if ratio_value >= 1 + min_effect:
        return "slower"
    if ratio_value <= 1 / (1 + min_effect):
        return "faster"
    return "same"
