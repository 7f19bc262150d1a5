"""Coverage of the summaries' 95% intervals (`anchorlens.stats`) on simulated two-level data (issue 28.1).

Each simulated data set has S seeds of n test inputs, nested as in the experiments: a seed is one draw of
demonstrations (and of its test inputs), so every seed has its own effect, and its inputs scatter around it. The
ratio is the spread of the seed effects (their standard deviation on the mean's scale) over one seed's input
standard error; 0 means seeds differ only through their inputs, 5 that seed differences dominate (the committed
results sit near 3: Gemma-3 re-weighting on AG News has seed means 5.0 / 20.5 / 34.5 %). Outcomes:

- ``binary``: 0/1 per input (accuracy, loyalty); a seed's rate is expit(logit 0.7 + σ·Z), σ set so that the
  rates' standard deviation is the ratio times √(0.7·0.3/n). True mean: the rate's expectation (quadrature).
- ``continuous``: skewed per-input values (saliency-like: gamma(2) errors) around 1 + a normal seed effect.
- ``paired``: two arms on the same inputs (a shared uniform per input: arm A holds when u < p_A,s, arm B when
  u < 0.55), the interval of the per-input difference A − B; arm A varies with the seed, arm B does not (a
  baseline like zero-shot). The ratio is the seed spread of p_A over the difference's input standard error.
- ``average``: the average over 4 binary tasks (rates 0.55, 0.65, 0.75, 0.85) of their means, its interval by
  `anchorlens.stats.task_average_with_ci` (the method of the claims' "Avg").

Single means and paired differences are judged by `anchorlens.stats.means_with_ci`, the function every
experiment's summary uses; a cell is the share of data sets whose interval holds the true mean.

    python analyses/coverage.py [--repetitions 2000] [--inputs 200] [--json FILE] [--write docs/coverage.md]
    python analyses/coverage.py --outcomes binary --rate 0.85     # a rate nearer its bound

``--write PAGE`` puts the table between ``<!-- coverage:start -->`` and ``<!-- coverage:end -->`` in PAGE;
``--check PAGE`` exits 1 with a diff when that block differs. ``--json FILE`` writes every cell with its
repetitions. Deterministic: the generator is seeded by ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit

from anchorlens.claims import check_block, write_block
from anchorlens.stats import LEVEL, means_with_ci, task_average_with_ci

SEEDS = (3, 5)
RATIOS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)
OUTCOMES = ("binary", "continuous", "paired", "average")
#: The issue's bounds on every cell (%).
LOWEST, HIGHEST = 93.0, 98.0
BASE_RATE = 0.7
PAIRED_BASELINE = 0.55
PAIRED_RATE = 0.65
TASK_RATES = (0.55, 0.65, 0.75, 0.85)
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)  # ∫ f(z) φ(z) dz ≈ Σ w f(z) / √(2π)


def _expected(function: Callable[[np.ndarray], np.ndarray]) -> float:
    return float(np.sum(_WEIGHTS * function(_NODES)) / np.sqrt(2 * np.pi))


@dataclass(frozen=True)
class SeedRates:
    """Per-seed rates expit(logit(rate) + σ·Z) whose standard deviation is `spread`, and their true mean."""

    rate: float
    spread: float

    @property
    def sigma(self) -> float:
        if self.spread == 0:
            return 0.0

        def sd(sigma: float) -> float:
            mean = _expected(lambda z: expit(logit(self.rate) + sigma * z))
            return np.sqrt(_expected(lambda z: (expit(logit(self.rate) + sigma * z) - mean) ** 2)) - self.spread

        if sd(20.0) < 0:  # rates in (0, 1) cannot spread that far around this rate
            raise ValueError(
                f"a seed spread of {self.spread:.3f} is more than rates around {self.rate} can have "
                f"(at most {np.sqrt(self.rate * (1 - self.rate)):.3f}); use more --inputs or a smaller ratio"
            )
        return float(brentq(sd, 1e-9, 20.0))

    @property
    def true_mean(self) -> float:
        sigma = self.sigma
        return _expected(lambda z: expit(logit(self.rate) + sigma * z))

    def draw(self, generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return expit(logit(self.rate) + self.sigma * generator.standard_normal(shape))


def _frame(values: np.ndarray, task: np.ndarray | None = None) -> pd.DataFrame:
    """Long rows of a [repetition, seed, input] array (or [repetition, task, seed, input] with task names)."""
    index = np.indices(values.shape).reshape(values.ndim, -1)
    columns = {"repetition": index[0], "seed": index[-2], "example": index[-1], "value": values.reshape(-1)}
    if task is not None:
        columns["task"] = task[index[1]]
    return pd.DataFrame(columns)


def simulate(
    outcome: str,
    n_seeds: int,
    ratio: float,
    n_inputs: int,
    repetitions: int,
    generator: np.random.Generator,
    rate: float = BASE_RATE,
) -> tuple[pd.DataFrame, float]:
    """(data in long rows, true mean) of one cell: ``repetition, [task,] seed, example, value``; `rate` is the
    binary outcome's typical rate."""
    shape = (repetitions, n_seeds)
    if outcome == "binary":
        rates = SeedRates(rate, ratio * np.sqrt(rate * (1 - rate) / n_inputs))
        p = rates.draw(generator, shape)
        values = generator.random((*shape, n_inputs)) < p[..., None]
        return _frame(values.astype(float)), rates.true_mean
    if outcome == "continuous":
        # gamma(2, 1) errors: mean 2, sd √2, skewed like per-input saliency.
        seed_effect = ratio * np.sqrt(2 / n_inputs) * generator.standard_normal(shape)
        values = 1 + seed_effect[..., None] + generator.gamma(2.0, 1.0, (*shape, n_inputs)) - 2.0
        return _frame(values), 1.0
    if outcome == "paired":
        gap = PAIRED_RATE - PAIRED_BASELINE
        rates = SeedRates(PAIRED_RATE, ratio * np.sqrt((gap - gap**2) / n_inputs))
        p = rates.draw(generator, shape)
        u = generator.random((*shape, n_inputs))
        difference = (u < p[..., None]).astype(float) - (u < PAIRED_BASELINE).astype(float)
        return _frame(difference), rates.true_mean - PAIRED_BASELINE
    if outcome == "average":
        tasks = [SeedRates(rate, ratio * np.sqrt(rate * (1 - rate) / n_inputs)) for rate in TASK_RATES]
        p = np.stack([task.draw(generator, shape) for task in tasks], axis=1)  # [repetition, task, seed]
        values = generator.random((*p.shape, n_inputs)) < p[..., None]
        names = np.array([f"task{index}" for index in range(len(tasks))])
        return _frame(values.astype(float), names), float(np.mean([task.true_mean for task in tasks]))
    raise ValueError(f"unknown outcome {outcome!r}; pick one of {OUTCOMES}")


def covered(outcome: str, rows: pd.DataFrame, truth: float, level: float = LEVEL) -> np.ndarray:
    """Per repetition: does the package's interval hold `truth`?"""
    if outcome == "average":
        bounds = [task_average_with_ci(part, "value", level=level)[1:] for _, part in rows.groupby("repetition")]
        low, high = np.array(bounds).T
    else:
        summary = means_with_ci(rows, ["repetition"], ["value"], level=level)
        low, high = summary["ci_low"].to_numpy(), summary["ci_high"].to_numpy()
    return (low <= truth) & (truth <= high)


def study(
    repetitions: int,
    n_inputs: int,
    seed: int,
    outcomes=OUTCOMES,
    seeds=SEEDS,
    ratios=RATIOS,
    rate: float = BASE_RATE,
) -> list[dict]:
    """Every cell: outcome, n_seeds, ratio, coverage (%), repetitions."""
    generator = np.random.default_rng(seed)
    cells = []
    for outcome in outcomes:
        for n_seeds in seeds:
            for ratio in ratios:
                rows, truth = simulate(outcome, n_seeds, ratio, n_inputs, repetitions, generator, rate)
                hits = covered(outcome, rows, truth)
                cells.append(
                    {
                        "outcome": outcome,
                        "n_seeds": n_seeds,
                        "ratio": ratio,
                        "coverage": 100 * float(hits.mean()),
                        "repetitions": repetitions,
                        "n_inputs": n_inputs,
                    }
                )
    return cells


def table(cells: list[dict], command: str) -> str:
    """Markdown: a row per (outcome, seeds), a column per ratio, coverage in %."""
    frame = pd.DataFrame(cells)
    ratios = sorted(frame["ratio"].unique())
    repetitions, n_inputs = int(frame["repetitions"].iloc[0]), int(frame["n_inputs"].iloc[0])
    lowest, highest = frame["coverage"].min(), frame["coverage"].max()
    inside = ((frame["coverage"] >= LOWEST) & (frame["coverage"] <= HIGHEST)).all()
    lines = [
        f"Generated by `{command}`; do not edit by hand. Coverage (%) of the true mean by the 95% interval, "
        f"{repetitions} simulated data sets per cell, {n_inputs} inputs per seed (standard error of a cell "
        f"≈ {100 * np.sqrt(0.95 * 0.05 / repetitions):.1f} points). Columns: seed spread / input standard error.",
        "",
        "| outcome | seeds | " + " | ".join(f"{ratio:g}" for ratio in ratios) + " |",
        "|---|---|" + "---|" * len(ratios),
    ]
    for (outcome, n_seeds), part in frame.groupby(["outcome", "n_seeds"], sort=False):
        by_ratio = part.set_index("ratio")["coverage"]
        lines.append(f"| {outcome} | {n_seeds} | " + " | ".join(f"{by_ratio[r]:.1f}" for r in ratios) + " |")
    verdict = "every cell" if inside else "NOT every cell"
    lines += ["", f"Range: {lowest:.1f}-{highest:.1f}%; {verdict} lies in [{LOWEST:g}, {HIGHEST:g}]."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=2000, help="simulated data sets per cell")
    parser.add_argument("--inputs", type=int, default=200, help="test inputs per seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outcomes", nargs="+", choices=OUTCOMES, default=list(OUTCOMES))
    parser.add_argument("--rate", type=float, default=BASE_RATE, help="the binary outcome's typical rate")
    parser.add_argument("--json", help="write every cell to this JSON file")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="PAGE", help="replace PAGE's coverage block with the table")
    mode.add_argument("--check", metavar="PAGE", help="exit 1 (with a diff) when PAGE's coverage block differs")
    args = parser.parse_args(argv)
    if args.repetitions < 2 or args.inputs < 2:
        parser.error("--repetitions and --inputs need at least 2 each")
    if not 0 < args.rate < 1:
        parser.error("--rate is a rate between 0 and 1, e.g. 0.7")
    command = f"python analyses/coverage.py --repetitions {args.repetitions} --inputs {args.inputs} --seed {args.seed}"
    if args.outcomes != list(OUTCOMES) or args.rate != BASE_RATE:
        command += f" --outcomes {' '.join(args.outcomes)} --rate {args.rate:g}"
    cells = study(args.repetitions, args.inputs, args.seed, tuple(args.outcomes), rate=args.rate)
    printed = table(cells, command)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "level": LEVEL, "cells": cells}, indent=1) + "\n")
    if args.check:
        return check_block(Path(args.check), printed, "coverage", "analyses/coverage.py")
    if args.write:
        write_block(Path(args.write), printed, "coverage")
        print(f"{args.write}: coverage block written")
        return 0
    print(printed, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
