"""anchorlens.stats: the seed-level interval, its input floor, and the summaries built on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from anchorlens.stats import (
    FLOOR_SHARE,
    TwoLevelResamples,
    average_interval,
    means_with_ci,
    seed_interval,
    task_average_with_ci,
)


def test_seed_interval_is_the_t_interval_over_seeds():
    values = np.array([0.05, 0.205, 0.345])  # Gemma-3 re-weighting on AG News, per seed (issue 28)
    low, high = seed_interval(values)
    half = scipy_stats.t.ppf(0.98, 2) * values.std(ddof=1) / np.sqrt(3)  # a 96% t (SKEW_ALLOWANCE)
    assert (low, high) == pytest.approx((values.mean() - half, values.mean() + half))
    assert low < values.min() and high > values.max()  # reaches past the seed values, as 3 seeds warrant


def test_the_floor_keeps_agreeing_seeds_from_a_zero_width_interval():
    low, high = seed_interval([0.7, 0.7, 0.7], within_sd=0.02)
    assert high - low == pytest.approx(2 * FLOOR_SHARE * 1.959964 * 0.02, rel=1e-5)
    assert seed_interval([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7), abs=1e-12)  # no floor asked
    wide = seed_interval([0.1, 0.5, 0.9], within_sd=0.02)
    assert wide == seed_interval([0.1, 0.5, 0.9])  # the t part is the larger: the floor changes nothing


def test_one_seed_gives_the_inputs_interval_and_none_without_them():
    assert seed_interval([0.6], within_sd=0.01) == pytest.approx((0.6 - 0.0196, 0.6 + 0.0196), abs=1e-4)
    assert all(np.isnan(seed_interval([0.6])))
    assert all(np.isnan(seed_interval([np.nan, np.nan])))
    assert seed_interval([0.2, np.nan, 0.4]) == seed_interval([0.2, 0.4])  # an undefined seed takes no part


def test_means_with_ci_per_group_with_the_inputs_floor():
    rows = pd.DataFrame(
        {
            "task": ["a"] * 6 + ["b"] * 6,
            "seed": [1, 1, 2, 2, 3, 3] * 2,
            "example": [0, 1] * 6,
            "x": [1, 0, 1, 0, 1, 0, 1, 1, 0, 0, np.nan, 1],
        }
    )
    summary = means_with_ci(rows, ["task"], ["x"]).set_index("task")
    a = summary.loc["a"]
    # every seed 0.5: the t part is 0, the floor is the inputs' error: √(3 × (0.5 / 2)) / 3
    assert a["mean"] == 0.5 and a["ci_high"] - 0.5 == pytest.approx(FLOOR_SHARE * 1.959964 * np.sqrt(0.75) / 3, 1e-5)
    b = summary.loc["b"]
    assert b["n_seeds"] == 3 and b["n_examples"] == 5 and b["mean"] == pytest.approx((1 + 0 + 1) / 3)
    with pytest.raises(ValueError, match="several rows per"):
        means_with_ci(pd.concat([rows, rows]), ["task"], ["x"])


def test_the_average_over_tasks_pairs_seeds_by_order():
    seed_values = np.array([[0.2, 0.4, 0.6], [0.6, 0.4, 0.2]])  # the tasks' seeds move oppositely
    mean, low, high = average_interval(seed_values, [0.0, 0.0])
    assert mean == pytest.approx(0.4) and low == pytest.approx(0.4) and high == pytest.approx(0.4)
    rows = pd.DataFrame(
        [
            {"task": task, "seed": seed, "example": e, "v": float(e < 10 * (k + 1))}
            for task in ("t1", "t2")
            for k, seed in enumerate((7, 8, 9))
            for e in range(40)
        ]
    )
    mean, low, high = task_average_with_ci(rows, "v")
    assert mean == pytest.approx(0.5) and low < 0.5 < high
    with pytest.raises(ValueError, match="different numbers of seeds"):
        task_average_with_ci(rows[~((rows["task"] == "t2") & (rows["seed"] == 9))], "v")


def test_resamples_redraw_inputs_within_fixed_seeds():
    draws = TwoLevelResamples(np.array([1, 1, 1, 2, 2]), 50, np.random.default_rng(0))
    assert (draws.seed_draws == 1).all()
    assert (draws.counts[:, :3].sum(1) == 3).all() and (draws.counts[:, 3:].sum(1) == 2).all()
