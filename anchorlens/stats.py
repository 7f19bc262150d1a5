"""Uncertainty of the summaries: a seeded two-level bootstrap over seeds and test inputs.

Every summary mean anchorlens reports is a mean over seeds of a mean over that seed's test inputs (SPEC §0:
"mean over examples, then mean over seeds"). Its interval resamples both levels: seeds with replacement,
then, within each drawn seed, its test inputs with replacement. Resampling weights are drawn once per
(task, model) from a generator keyed by the stratum's name and `seed`, so reruns give identical intervals
and every metric of one stratum is resampled alike.

Summaries are long tables: the grouping columns, then ``metric, mean, ci_low, ci_high, n_seeds, n_examples``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

#: Bootstrap resamples per interval, and the interval's coverage.
N_RESAMPLES = 1000
LEVEL = 0.95
#: Seed of the bootstrap generators (combined with each stratum's name).
BOOTSTRAP_SEED = 0

SUMMARY_COLUMNS = ("metric", "mean", "ci_low", "ci_high", "n_seeds", "n_examples")
_STRATA = ("task", "model")


def _generator(stratum: tuple, seed: int) -> np.random.Generator:
    key = zlib.crc32("|".join(str(part) for part in stratum).encode())
    return np.random.default_rng([seed, key])


class TwoLevelResamples:
    """Draws of one two-level bootstrap over the (seed, input) units of a stratum.

    ``seed_draws[r, s]``: how often seed s is drawn in resample r; ``counts[r, i]``: how often unit i is drawn,
    summed over the draws of its seed (the sum of c independent draws of a seed's n inputs is one multinomial
    of c × n draws, which is what is sampled).
    """

    def __init__(self, unit_seeds: np.ndarray, n_resamples: int, generator: np.random.Generator):
        self.seeds, self.seed_of_unit = np.unique(unit_seeds, return_inverse=True)
        n_seeds = len(self.seeds)
        self.seed_draws = generator.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_resamples)
        self.counts = np.zeros((n_resamples, len(unit_seeds)))
        for index in range(n_seeds):
            members = np.flatnonzero(self.seed_of_unit == index)
            n = len(members)
            for resample in range(n_resamples):
                draws = self.seed_draws[resample, index] * n
                if draws:
                    self.counts[resample, members] = generator.multinomial(draws, np.full(n, 1 / n))

    def mean_of_seed_means(self, units: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Resampled mean over seeds of per-seed means of `x` (one value per unit in `units`), [resample]."""
        numerator = np.zeros(len(self.seed_draws))
        seed_weight = np.zeros(len(self.seed_draws))
        seed_index = self.seed_of_unit[units]
        for index in np.unique(seed_index):
            mine = seed_index == index
            counts = self.counts[:, units[mine]]
            total = counts.sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                seed_mean = counts @ x[mine] / total
            drawn = (self.seed_draws[:, index] > 0) & (total > 0)
            numerator[drawn] += self.seed_draws[drawn, index] * seed_mean[drawn]
            seed_weight[drawn] += self.seed_draws[drawn, index]
        with np.errstate(invalid="ignore", divide="ignore"):
            return numerator / seed_weight


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap values (NaN resamples left out)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


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
    return TwoLevelResamples(units["seed"].to_numpy(), n_resamples, _generator(stratum_key, seed)), index_of


def bootstrap_means(
    examples: pd.DataFrame,
    by: Sequence[str],
    values: Sequence[str],
    *,
    unit: str = "example",
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Mean over seeds of per-seed means of each `values` column, per `by` group, with a bootstrap interval.

    `examples` has one row per (seed, `unit`) within each `by` group. Rows whose value is NaN are left out of
    that metric. Returns the long summary (module docstring).
    """
    by = list(by)
    rows = []
    for stratum_key, stratum in strata(examples, by):
        resamples, index_of = resamples_for(stratum_key, stratum, unit=unit, n_resamples=n_resamples, seed=seed)
        for group_key, group in stratum.groupby(by, sort=False):
            group_key = group_key if isinstance(group_key, tuple) else (group_key,)
            units = np.array([index_of[(s, u)] for s, u in zip(group["seed"], group[unit])])
            if len(set(units.tolist())) != len(units):
                raise ValueError(f"bootstrap_means: group {group_key} has several rows per (seed, {unit})")
            for metric in values:
                x = group[metric].to_numpy(dtype=float)
                keep = np.isfinite(x)
                if not keep.any():
                    rows.append((*group_key, metric, np.nan, np.nan, np.nan, 0, 0))
                    continue
                per_seed = pd.Series(x[keep]).groupby(group["seed"].to_numpy()[keep]).mean()
                low, high = interval(resamples.mean_of_seed_means(units[keep], x[keep]), level)
                rows.append(
                    (*group_key, metric, float(per_seed.mean()), low, high, int(per_seed.size), int(keep.sum()))
                )
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])


def bootstrap_statistic(
    examples: pd.DataFrame,
    by: Sequence[str],
    statistic: Callable[[pd.DataFrame], dict[str, float]],
    *,
    unit: str = "example",
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Like `bootstrap_means` for a statistic that is not a mean of per-example values (an AUROC, a
    correlation): ``statistic(frame)`` maps the rows of one seed of one group to ``{metric: value}``; the
    estimate is its mean over seeds, and each resample applies it to the resampled rows (rows repeated as
    often as drawn) of each drawn seed. Slower than `bootstrap_means`: use fewer `n_resamples` if needed.
    """
    by = list(by)
    rows = []
    for stratum_key, stratum in strata(examples, by):
        resamples, index_of = resamples_for(stratum_key, stratum, unit=unit, n_resamples=n_resamples, seed=seed)
        for group_key, group in stratum.groupby(by, sort=False):
            group_key = group_key if isinstance(group_key, tuple) else (group_key,)
            units = np.array([index_of[(s, u)] for s, u in zip(group["seed"], group[unit])])
            seed_position = {seed_value: i for i, seed_value in enumerate(resamples.seeds)}
            by_seed = {s: (frame, units[group["seed"].to_numpy() == s]) for s, frame in group.groupby("seed")}
            estimates = {s: statistic(frame) for s, (frame, _) in by_seed.items()}
            metrics = list(next(iter(estimates.values())))
            boot = {metric: np.zeros(n_resamples) for metric in metrics}
            weight = np.zeros(n_resamples)
            for s, (frame, seed_units) in by_seed.items():
                column = seed_position[s]
                for resample in range(n_resamples):
                    times = resamples.seed_draws[resample, column]
                    if not times:
                        continue
                    repeat = resamples.counts[resample, seed_units].astype(int)
                    value = statistic(frame.iloc[np.repeat(np.arange(len(frame)), repeat)])
                    for metric in metrics:
                        boot[metric][resample] += times * value[metric]
                    weight[resample] += times
            for metric in metrics:
                point = float(np.nanmean([estimate[metric] for estimate in estimates.values()]))
                with np.errstate(invalid="ignore", divide="ignore"):
                    low, high = interval(boot[metric] / weight, level)
                rows.append((*group_key, metric, point, low, high, len(estimates), len(group)))
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])
