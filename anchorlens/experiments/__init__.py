"""Experiments: a frozen config → a run function over (model, task, config) → a result with `.to_frame()`
and `.save(dir)`. Each module declares its experiment once (``EXPERIMENT = Experiment(...)``,
`anchorlens.preparation.Experiment`); `anchorlens.registry` collects the declarations and
`anchorlens.orchestrate` runs them by name over several tasks and draws their figures.

The config, result and run function of each experiment (``SaliencyConfig``, ``SaliencyResult``,
``run_saliency``, ...) are imported from its module on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from anchorlens.catalog import declared, public_names

#: Each public name of an experiment, and the module that declares it.
_EXPORTS: dict[str, str] = {name: entry.module for entry in declared().values() for name in public_names(entry)}


def __getattr__(name: str) -> Any:
    """Import an experiment's config, result or run function from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'anchorlens.experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def saved_files(folder: str | Path, experiment: str) -> dict[str, bytes]:
    """File name → content of an experiment's combined tables in `folder`, verified against the parts they were
    made of and recomputed from them where they do not match (`ExperimentResult.saved_files`); for the analyses
    scripts, not part of the public API."""
    module = importlib.import_module(declared()[experiment].module)
    return module.EXPERIMENT.result_class.saved_files(folder)


__all__ = sorted(_EXPORTS)
