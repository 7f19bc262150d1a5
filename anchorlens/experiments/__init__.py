"""Experiments: a frozen config → a run function over (model, task, config) → a result with `.to_frame()`
and `.save(dir)`. `anchorlens.orchestrate` runs them by name over several tasks and draws their figures."""

from __future__ import annotations

from anchorlens.experiments.auroc import AurocConfig, AurocResult, run_auroc
from anchorlens.experiments.compress import CompressConfig, CompressResult, run_compress
from anchorlens.experiments.diagnose import DiagnoseConfig, DiagnoseResult, run_diagnose
from anchorlens.experiments.heads import HeadsConfig, HeadsResult, run_heads
from anchorlens.experiments.isolation import IsolationConfig, IsolationResult, run_isolation
from anchorlens.experiments.reweight import ReweightConfig, ReweightResult, run_reweight
from anchorlens.experiments.saliency import SaliencyConfig, SaliencyResult, run_saliency

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
