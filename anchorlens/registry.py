"""The registry of the experiments, collected from their declarations: every module of `anchorlens.experiments`
that declares ``EXPERIMENT = Experiment(...)`` (`anchorlens.preparation.Experiment`) is imported and its
declaration kept under its name, in the declared order. Adding an experiment is adding its module; nothing here
names one. `anchorlens.orchestrate` runs experiments by name through it, and `anchorlens.outputs` writes and reads
results folders through it (both sit beside it, above the experiments).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from anchorlens import plots
from anchorlens.catalog import declared
from anchorlens.preparation import Experiment


def _collected() -> dict[str, Experiment]:
    """Each declared experiment by name, in the declared order (`anchorlens.catalog.declared` finds the modules
    from their source; the declarations themselves are the imported modules' ``EXPERIMENT``)."""
    experiments = {}
    for name, entry in declared().items():
        experiment = importlib.import_module(entry.module).EXPERIMENT
        if experiment.name != name:
            raise ImportError(f"{entry.module} declares {experiment.name!r}, its source says {name!r}")
        experiments[name] = experiment
    return experiments


#: Every experiment by name, in the order they run (`Experiment.order`).
EXPERIMENTS: dict[str, Experiment] = _collected()


def figures(name: str) -> dict[str, Callable]:
    """File stem → figure function (of `anchorlens.plots`) of every figure of the experiment `name`, its main
    figure (``<name>.html``) first."""
    return {stem: _figure_function(function) for stem, function in EXPERIMENTS[name].figure_stems().items()}


def _figure_function(function: str) -> Callable:
    """A declared figure function: a name in `anchorlens.plots`, or ``"module:function"``."""
    module, _, name = function.rpartition(":")
    return getattr(importlib.import_module(module) if module else plots, name)


def in_paper_order() -> tuple[str, ...]:
    """The experiments that reproduce a part of the paper, in the order of its sections (2.1 saliency ... 3.3
    diagnosis): the order reports on the paper's claims list them in. `EXPERIMENTS` keeps the order they run in."""
    sections = {name: spec.section for name, spec in EXPERIMENTS.items() if spec.section is not None}
    return tuple(sorted(sections, key=lambda name: tuple(map(int, sections[name].split(".")))))
