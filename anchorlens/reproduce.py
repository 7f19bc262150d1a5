"""One-command paper reproduction: every experiment on one model, resumable, with a report and a manifest.

``reproduce(ReproduceConfig(...), out)`` runs each experiment into ``out/<experiment>/`` (finished
(task, seed) parts are kept and skipped on a rerun), then writes ``out/report.md`` with each experiment's
table, the paper's expectation beside it and links to the figures, and ``out/manifest.json`` (package
versions, model name and weight hashes, seeds, sizes, wall time).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from anchorlens import paper
from anchorlens.errors import InvalidConfigError
from anchorlens.models import DEFAULT_MODEL, OFFLINE_MODELS, weights_fingerprint

PAPER_TASKS = ("sst2", "agnews", "trec", "emoc")


def _default_experiments() -> tuple[str, ...]:
    from anchorlens.experiments import EXPERIMENTS

    return tuple(EXPERIMENTS)


@dataclass(frozen=True)
class ReproduceConfig:
    """Sizes of the reproduction. The defaults are the README's main job: small enough for 2 CPU cores."""

    model: str = DEFAULT_MODEL
    tasks: tuple[str, ...] = PAPER_TASKS
    seeds: tuple[int, ...] = (42,)
    n_test: int = 20
    batch_size: int = 8
    experiments: tuple[str, ...] = field(default_factory=_default_experiments)

    def __post_init__(self) -> None:
        from anchorlens.experiments import EXPERIMENTS

        unknown = [name for name in self.experiments if name not in EXPERIMENTS]
        if unknown:
            raise InvalidConfigError(f"unknown experiments {unknown}; choose from {', '.join(EXPERIMENTS)}")


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table (no extra dependency); a meaningful index becomes leading columns."""
    frame = frame.copy() if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()
    frame.columns = [" ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in frame.columns]

    def cell(value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    names = ["anchorlens", "torch", "transformer-lens", "transformers", "datasets", "numpy", "scikit-learn", "plotly"]
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def _report_section(name: str, result, folder: str) -> list[str]:
    lines = [f"## {name}", "", f"Paper: {paper.EXPECTED.get(name, '')}", "", markdown_table(result.report_table()), ""]
    lines += [f"Figure: [{folder}/{name}.html]({folder}/{name}.html); table: [{folder}/{name}.csv]({folder}/{name}.csv)", ""]
    return lines


def reproduce(
    config: ReproduceConfig, out: str | Path, *, progress: bool = True, device: str | None = None, n_devices: int = 1
) -> Path:
    """Run every experiment of `config` into `out` and write the report; returns the report's path.

    `device` and `n_devices` place the model (see `load_model`). Under torchrun or accelerate launch the ranks
    share each experiment's parts and rank 0 alone writes the report and manifest (docs/scaling.md).
    """
    from anchorlens.distributed import init_distributed, place_rank
    from anchorlens.experiments import EXPERIMENTS, run_experiment
    from anchorlens.models import load_model
    from anchorlens.runs import atomic_write_text
    from anchorlens.tasks import get_task

    out = Path(out)
    tasks = [get_task(task) for task in config.tasks]
    started = time.perf_counter()
    process = init_distributed()
    model = load_model(config.model, device=place_rank(process, device, n_devices=n_devices), n_devices=n_devices)
    timings, sections = {}, []
    for name in config.experiments:
        spec = EXPERIMENTS[name]
        experiment_config = spec.config_class(model=config.model, seeds=config.seeds, n_test=config.n_test,
                                              batch_size=config.batch_size)
        began = time.perf_counter()
        result = run_experiment(name, model, tasks, experiment_config, out / name, progress=progress)
        timings[name] = round(time.perf_counter() - began, 1)
        sections += _report_section(name, result, name)
    report = out / "report.md"
    if not process.is_main:
        return report
    wall = round(time.perf_counter() - started, 1)
    manifest = {
        "config": asdict(config),
        "versions": _versions(),
        "model": config.model,
        "weights": weights_fingerprint(config.model) if config.model in OFFLINE_MODELS else {},
        "processes": process.world_size,
        "wall_seconds_this_run": wall,
        "seconds_per_experiment_this_run": timings,
    }
    atomic_write_text(out / "reproduce-manifest.json", json.dumps(manifest, indent=2))
    header = [
        f"# anchorlens reproduction: {config.model}",
        "",
        f"Tasks {', '.join(config.tasks)}; seeds {', '.join(map(str, config.seeds))}; {config.n_test} test inputs per "
        f"task and seed. Wall time of this run: {wall} s (finished parts of earlier runs are reused, not timed).",
        "Versions and weight hashes: [reproduce-manifest.json](reproduce-manifest.json).",
        "",
    ]
    atomic_write_text(report, "\n".join(header + sections))
    return report
