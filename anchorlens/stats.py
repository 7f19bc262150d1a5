"""Uncertainty of the summaries: a seed-level t-interval with an input-sampling floor.

Every summary mean anchorlens reports is a mean over seeds of a per-seed statistic (SPEC §0: "mean over examples,
then mean over seeds"; for AUROC, saliency and confusion the statistic of a seed's inputs). Its interval is

    estimate ± max(t_{S−1} · sd(seed values) / √S,  FLOOR_SHARE · z · within_sd)

with S the seeds whose value is defined, t_{S−1} the (1 + level + SKEW_ALLOWANCE)/2 quantile of Student's t (a
96% t for a 95% interval: see below), z the (1 + level)/2 quantile of the normal,
and ``within_sd`` the standard error the test inputs alone give the estimate, (√Σ_s v_s) / S with v_s the
variance of seed s's value over resamples of its own inputs (for a mean: its inputs' variance over their number).

Why this method. A seed is one draw of demonstrations (and of the test subset); its inputs are nested in it. Under
that two-level model each seed's value is the true mean plus a seed effect plus its inputs' error, independent
across seeds, so the seed values' sample variance already holds both levels, and the t-interval over the S seed
values is the exact interval of a balanced one-way random-effects model: its coverage does not depend on how the
seed spread compares with the input error. The two-level percentile bootstrap this replaces did depend on it: a
bootstrap over 3 seeds cannot reach past the range of their values, and covered the true mean 77% of the time at 3
seeds and 87% at 5 where the seed spread was 2.8 times the input error (the committed results' regime), and 98-100%
with no seed spread (issue 28, simulated with that bootstrap). The floor keeps an interval from collapsing when
seeds agree by construction (a zero-shot baseline on a fixed test set: every seed sees the same inputs and gives the
same accuracy, so the t part is 0, yet the inputs are a sample); its factor FLOOR_SHARE < 1 because with no seed
spread a full z floor alone already covers 95%, and the t part on top of it pushes coverage above that. The t part
is exact only for normal seed values; rates near a bound have skewed seed effects (logit-normal), and at 3 seeds
with a seed spread of 5 input errors a 95% t covered 92.6% (measured by `analyses/coverage.py`, first run); its
quantile is therefore taken one point higher (SKEW_ALLOWANCE), which brings that cell back above 94% and costs about
one point of over-coverage where seeds agree. docs/coverage.md holds the table: every cell in [93%, 98%] at 3 and 5
seeds for a seed spread of 0 to 5 input errors, binary and continuous outcomes, paired differences and averages over
tasks. Costs: at 3 seeds the t quantile is 4.85 (4.30 at 95%), so intervals are wide; that width is what 3 seeds
know. Known limit: a rate near 0.85 with seed spread 5 input errors still covers 92.5% at 3 seeds, 92.8% at 5
(`analyses/coverage.py --outcomes binary --rate 0.85`).

Paired differences (two arms on the same inputs) use the same interval on the per-input differences; an average
over tasks (`average_interval`) pairs the tasks' seeds by position, so its seed values are the means over tasks of
each seed's task values, and its floor adds the tasks' within-seed variances.

Resamples (`TwoLevelResamples`, kept by name) now redraw only the test inputs within each seed, seeds held fixed:
they measure ``within_sd`` of statistics that are not means (AUROC, normalised saliency, confusion), and draw
for draw depend only on the stratum's name and `seed`, so reruns give identical intervals and every metric of
one stratum is resampled alike.

Summaries are long tables: the grouping columns, then ``metric, mean, ci_low, ci_high, n_seeds, n_examples``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from anchorlens.random_streams import bootstrap_generator

#: Resamples of the inputs within each seed (for ``within_sd`` of statistics that are not means), and the
#: interval's coverage.
N_RESAMPLES = 1000
LEVEL = 0.95
#: Seed of the resampling generators (combined with each stratum's name).
BOOTSTRAP_SEED = 0
#: The input-sampling floor's share of the normal quantile (module docstring): 0.5 · 1.96 = 0.98 at 95%. Set
#: from the no-seed-spread cells of the coverage study, the ones it moves: 0.6 with a 95% t covered 96.0-96.8%
#: there, 0.5 with the 96% t covers 96.1-97.1% (docs/coverage.md).
FLOOR_SHARE = 0.5
#: Added to the level of the t part's quantile (module docstring): skewed seed effects of bounded rates made a
#: 95% t under-cover (92.6% at 3 seeds, seed spread 5 input errors); a 96% t covers 94-97% in every cell.
SKEW_ALLOWANCE = 0.01

SUMMARY_COLUMNS = ("metric", "mean", "ci_low", "ci_high", "n_seeds", "n_examples")
_STRATA = ("task", "model")


def seed_interval(
    seed_values: Sequence[float] | np.ndarray, within_sd: float = 0.0, level: float = LEVEL
) -> tuple[float, float]:
    """The interval of the mean of `seed_values` (module docstring): the seed-level t half-width (its quantile
    SKEW_ALLOWANCE above the level), floored by
    FLOOR_SHARE · z · `within_sd` (the estimate's standard error from the test inputs alone; 0: no floor).
    NaN values (a seed where the statistic is undefined) are left out. With one seed the interval is the test
    inputs' alone, z · `within_sd` (the spread over seeds is unknown, as ``n_seeds`` says); with none, or one
    and no `within_sd`, NaN."""
    values = np.asarray(seed_values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    mean = float(values.mean())
    z = float(scipy_stats.norm.ppf((1 + level) / 2))
    within_sd = within_sd if math.isfinite(within_sd) else 0.0
    if values.size == 1:
        return (mean - z * within_sd, mean + z * within_sd) if within_sd > 0 else (float("nan"), float("nan"))
    floor = FLOOR_SHARE * z * within_sd
    t_quantile = scipy_stats.t.ppf((1 + level + SKEW_ALLOWANCE) / 2, values.size - 1)
    t_half = t_quantile * values.std(ddof=1) / math.sqrt(values.size)
    half = max(float(t_half), floor)
    return mean - half, mean + half


def within_sd_of(resampled: np.ndarray) -> float:
    """Standard deviation over resamples of a statistic whose inputs were redrawn within fixed seeds: the
    ``within_sd`` of `seed_interval` (NaN resamples left out; 0 with fewer than two)."""
    values = np.asarray(resampled, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def mean_within_sd(per_seed_variances: Sequence[float] | np.ndarray) -> float:
    """``within_sd`` of a mean over seeds from each seed's own variance of its value: √Σ v_s / S (NaN seeds out)."""
    variances = np.asarray(per_seed_variances, dtype=float)
    variances = variances[np.isfinite(variances)]
    return float(math.sqrt(variances.sum()) / variances.size) if variances.size else 0.0


def seed_mean_and_variance(values: np.ndarray, seeds: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """Per seed: the mean of `values` and its variance from the inputs (their variance over their number; 0 for
    one input). NaN values are left out."""
    frame = pd.DataFrame({"seed": seeds, "x": values}).dropna()
    grouped = frame.groupby("seed")["x"]
    variance = (grouped.var(ddof=1) / grouped.size()).fillna(0.0)
    return grouped.mean(), variance


def average_interval(
    seed_values: np.ndarray, within_sds: Sequence[float], level: float = LEVEL
) -> tuple[float, float, float]:
    """(mean, low, high) of the average over tasks of per-task means, by the same method: `seed_values` is
    [task, seed], the seeds of every task paired by position (independent draws, so any pairing is one); a
    seed's value is the mean over tasks of its task values, and the floor adds the tasks' within-seed
    variances, √Σ_t within_sd_t² / T. A seed missing in any task (NaN) is left out."""
    values = np.asarray(seed_values, dtype=float)
    per_seed = values.mean(0)  # NaN where a task lacks that seed
    within = math.sqrt(float(np.sum(np.square(within_sds)))) / values.shape[0]
    low, high = seed_interval(per_seed, within, level)
    return float(np.nanmean(per_seed)), low, high


class TwoLevelResamples:
    """Resamples of the test inputs within each seed of a stratum, seeds held fixed (module docstring).

    ``counts[r, i]``: how often unit i is drawn in resample r (a multinomial of its seed's n inputs);
    ``seed_draws[r, s]``: how often seed s enters resample r, always 1 (the seeds' spread enters the interval
    through its t part, not through redrawing them), kept so that statistics weight seeds alike everywhere.
    """

    def __init__(self, unit_seeds: np.ndarray, n_resamples: int, generator: np.random.Generator):
        self.seeds, self.seed_of_unit = np.unique(unit_seeds, return_inverse=True)
        n_seeds = len(self.seeds)
        self.seed_draws = np.ones((n_resamples, n_seeds), dtype=int)
        self.counts = np.zeros((n_resamples, len(unit_seeds)))
        for index in range(n_seeds):
            members = np.flatnonzero(self.seed_of_unit == index)
            n = len(members)
            self.counts[:, members] = generator.multinomial(n, np.full(n, 1 / n), size=n_resamples)


def strata(examples: pd.DataFrame, by: Sequence[str]):
    """(key, frame) of each (task, model) present in `by`: the independent data sets resampled apart."""
    columns = [column for column in _STRATA if column in by]
    if not columns:
        yield (), examples
        return
    for key, frame in examples.groupby(columns, sort=False):
        yield (key if isinstance(key, tuple) else (key,)), frame


def resamples_for(
    stratum_key: tuple,
    frame: pd.DataFrame,
    *,
    unit: str = "example",
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[TwoLevelResamples, dict]:
    """The resamples of one stratum and the column index of each (seed, unit)."""
    units = frame[["seed", unit]].drop_duplicates().sort_values(["seed", unit]).reset_index(drop=True)
    index_of = {(s, u): i for i, (s, u) in enumerate(zip(units["seed"], units[unit]))}
    return TwoLevelResamples(units["seed"].to_numpy(), n_resamples, bootstrap_generator(stratum_key, seed)), index_of


def means_with_ci(
    examples: pd.DataFrame,
    by: Sequence[str],
    values: Sequence[str],
    *,
    unit: str = "example",
    level: float = LEVEL,
) -> pd.DataFrame:
    """Mean over seeds of per-seed means of each `values` column, per `by` group, with its `seed_interval`
    (floor: the inputs' own standard error, `mean_within_sd` of each seed's variance of its mean).

    `examples` has one row per (seed, `unit`) within each `by` group. Rows whose value is NaN are left out of
    that metric. Returns the long summary (module docstring).
    """
    by = list(by)
    if examples.duplicated([*by, "seed", unit]).any():
        raise ValueError(f"means_with_ci: a group of {by} has several rows per (seed, {unit})")
    groups = examples.groupby(by, sort=False).size().index
    rows = []
    for metric in values:
        kept = examples[[*by, "seed", metric]].dropna(subset=[metric])
        # Per (group, seed): the seed's mean and its variance from the inputs (their variance over their number).
        per_seed = kept.groupby([*by, "seed"], sort=False)[metric].agg(["mean", "var", "size"])
        per_seed["variance"] = (per_seed["var"] / per_seed["size"]).fillna(0.0)
        by_group = {_as_tuple(k): part for k, part in per_seed.groupby(level=list(range(len(by))), sort=False)}
        for group_key in groups:
            key = _as_tuple(group_key)
            part = by_group.get(key)
            if part is None:
                rows.append((*key, metric, np.nan, np.nan, np.nan, 0, 0))
                continue
            low, high = seed_interval(part["mean"].to_numpy(), mean_within_sd(part["variance"].to_numpy()), level)
            rows.append((*key, metric, float(part["mean"].mean()), low, high, len(part), int(part["size"].sum())))
    order = {_as_tuple(key): index for index, key in enumerate(groups)}
    rows.sort(key=lambda row: order[tuple(row[: len(by)])])  # group by group, metrics in order (stable sort)
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])


def _as_tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def task_average_with_ci(
    examples: pd.DataFrame, value: str, *, unit: str = "example", level: float = LEVEL
) -> tuple[float, float, float]:
    """(mean, low, high) of the average over the ``task`` column's tasks of each task's mean over seeds of
    per-seed means of `value` (`average_interval`: a task's seeds paired with the others' by their order).
    Every task needs the same number of seeds; otherwise a ValueError says which tasks differ."""
    if examples.duplicated(["task", "seed", unit]).any():
        raise ValueError(f"task_average_with_ci: several rows per (task, seed, {unit})")
    seed_values, within, counts = [], [], {}
    for task, rows in examples.groupby("task", sort=False):
        per_seed, variance = seed_mean_and_variance(rows[value].to_numpy(dtype=float), rows["seed"].to_numpy())
        seed_values.append(per_seed.sort_index().to_numpy())
        within.append(mean_within_sd(variance.to_numpy()))
        counts[str(task)] = len(per_seed)
    if len(set(counts.values())) != 1:
        raise ValueError(
            f"task_average_with_ci: the tasks have different numbers of seeds {counts}; pass the seeds all share"
        )
    return average_interval(np.vstack(seed_values), within, level)
