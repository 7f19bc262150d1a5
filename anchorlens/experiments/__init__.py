"""Experiments: a frozen config → a run function over (model, task, config) → a result with `.to_frame()`
and `.save(dir)`. `EXPERIMENTS` lets the CLI and scripts treat them alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anchorlens.experiments.auroc import AurocConfig, AurocResult, run_auroc
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult
from anchorlens.experiments.isolation import IsolationConfig, IsolationResult, run_isolation
from anchorlens.experiments.saliency import SaliencyConfig, SaliencyResult, run_saliency


@dataclass(frozen=True)
class ExperimentSpec:
    config_class: type[ExperimentConfig]
    result_class: type[ExperimentResult]
    run: Callable
    plot: Callable
    #: CLI options (argparse dest names) that map one-to-one onto config fields.
    cli_fields: tuple[str, ...] = ()


def _plot(name: str) -> Callable:
    def plot(result):
        from anchorlens import plots

        return getattr(plots, f"plot_{name}")(result)

    return plot


EXPERIMENTS: dict[str, ExperimentSpec] = {
    "saliency": ExperimentSpec(SaliencyConfig, SaliencyResult, run_saliency, _plot("saliency"), ("abs_per_head",)),
    "isolation": ExperimentSpec(IsolationConfig, IsolationResult, run_isolation, _plot("isolation"), ("k", "word_top_k")),
    "auroc": ExperimentSpec(AurocConfig, AurocResult, run_auroc, _plot("auroc")),
}

__all__ = [
    "EXPERIMENTS",
    "AurocConfig",
    "AurocResult",
    "IsolationConfig",
    "IsolationResult",
    "SaliencyConfig",
    "SaliencyResult",
    "run_auroc",
    "run_isolation",
    "run_saliency",
]
