"""The registry of the experiments: per experiment its config and result classes, its run function, its figures
and whether it reproduces a part of the paper. `anchorlens.orchestrate` runs experiments by name through it, and
`anchorlens.outputs` writes and reads results folders through it (both sit beside it, above the experiments).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anchorlens.experiments import (
    AurocConfig,
    AurocResult,
    CompressConfig,
    CompressResult,
    DiagnoseConfig,
    DiagnoseResult,
    HeadsConfig,
    HeadsResult,
    IsolationConfig,
    IsolationResult,
    ReweightConfig,
    ReweightResult,
    SaliencyConfig,
    SaliencyResult,
    run_auroc,
    run_compress,
    run_diagnose,
    run_heads,
    run_isolation,
    run_reweight,
    run_saliency,
)
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult
from anchorlens.plots import (
    plot_auroc,
    plot_compress,
    plot_compress_by_task,
    plot_diagnose,
    plot_heads,
    plot_isolation,
    plot_isolation_by_k,
    plot_reweight,
    plot_saliency,
)


@dataclass(frozen=True)
class ExperimentSpec:
    """What the registry knows of one experiment: its config and result classes, its run function over
    (model, task, config), the function that draws its result (written as ``<experiment>.html``), further
    figures (``<name>.html`` each), and the paper's section it reproduces (``"2.1"``; None for an experiment of
    anchorlens's own, which `anchorlens reproduce` does not run by default)."""

    config_class: type[ExperimentConfig]
    result_class: type[ExperimentResult]
    run: Callable
    plot: Callable
    section: str | None
    more_plots: tuple[tuple[str, Callable], ...] = ()

    @property
    def paper(self) -> bool:
        """Whether the experiment reproduces a part of the paper."""
        return self.section is not None

    def figures(self, name: str) -> dict[str, Callable]:
        """File stem → figure function of every figure of the experiment `name`, its main figure first."""
        return {name: self.plot, **dict(self.more_plots)}


EXPERIMENTS: dict[str, ExperimentSpec] = {
    "saliency": ExperimentSpec(SaliencyConfig, SaliencyResult, run_saliency, plot_saliency, section="2.1"),
    "isolation": ExperimentSpec(
        IsolationConfig,
        IsolationResult,
        run_isolation,
        plot_isolation,
        section="2.2",
        more_plots=(("isolation_by_k", plot_isolation_by_k),),
    ),
    "auroc": ExperimentSpec(AurocConfig, AurocResult, run_auroc, plot_auroc, section="2.3"),
    "diagnose": ExperimentSpec(DiagnoseConfig, DiagnoseResult, run_diagnose, plot_diagnose, section="3.3"),
    "reweight": ExperimentSpec(ReweightConfig, ReweightResult, run_reweight, plot_reweight, section="3.1"),
    "compress": ExperimentSpec(
        CompressConfig,
        CompressResult,
        run_compress,
        plot_compress,
        section="3.2",
        more_plots=(("compress_by_task", plot_compress_by_task),),
    ),
    "heads": ExperimentSpec(HeadsConfig, HeadsResult, run_heads, plot_heads, section=None),
}


def in_paper_order() -> tuple[str, ...]:
    """The experiments that reproduce a part of the paper, in the order of its sections (2.1 saliency ... 3.3
    diagnosis): the order reports on the paper's claims list them in. `EXPERIMENTS` keeps the order they run in."""
    sections = {name: spec.section for name, spec in EXPERIMENTS.items() if spec.section is not None}
    return tuple(sorted(sections, key=lambda name: tuple(map(int, sections[name].split(".")))))
