"""Experiments: a frozen config → a run function over (model, task, config) → a result with `.to_frame()`
and `.save(dir)`. `anchorlens.orchestrate` runs them by name over several tasks and draws their figures."""

from __future__ import annotations

from pathlib import Path

from anchorlens.experiments.auroc import AurocConfig, AurocResult, run_auroc
from anchorlens.experiments.compress import CompressConfig, CompressResult, run_compress
from anchorlens.experiments.diagnose import DiagnoseConfig, DiagnoseResult, run_diagnose
from anchorlens.experiments.heads import HeadsConfig, HeadsResult, run_heads
from anchorlens.experiments.isolation import IsolationConfig, IsolationResult, run_isolation
from anchorlens.experiments.reweight import ReweightConfig, ReweightResult, run_reweight
from anchorlens.experiments.saliency import SaliencyConfig, SaliencyResult, run_saliency

#: Each experiment's result class by its name (``"saliency"``, ...): what reads its saved tables back.
RESULT_CLASSES = {
    result.experiment: result
    for result in (
        SaliencyResult,
        IsolationResult,
        AurocResult,
        DiagnoseResult,
        ReweightResult,
        CompressResult,
        HeadsResult,
    )
}


def saved_files(folder: str | Path, experiment: str) -> dict[str, bytes]:
    """File name → content of an experiment's combined tables in `folder`, verified against the parts they were
    made of and recomputed from them where they do not match (`ExperimentResult.saved_files`); for the analyses
    scripts, not part of the public API."""
    return RESULT_CLASSES[experiment].saved_files(folder)


__all__ = [
    "AurocConfig",
    "AurocResult",
    "CompressConfig",
    "CompressResult",
    "DiagnoseConfig",
    "DiagnoseResult",
    "HeadsConfig",
    "HeadsResult",
    "IsolationConfig",
    "IsolationResult",
    "ReweightConfig",
    "ReweightResult",
    "SaliencyConfig",
    "SaliencyResult",
    "run_auroc",
    "run_compress",
    "run_diagnose",
    "run_heads",
    "run_isolation",
    "run_reweight",
    "run_saliency",
]
