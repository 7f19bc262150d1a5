"""Experiments: a frozen config → a run function over (model, task, config) → a result with `.to_frame()`
and `.save(dir)`. `EXPERIMENTS` lets the CLI and scripts treat them alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anchorlens.experiments.auroc import AurocConfig, AurocResult, run_auroc
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult
from anchorlens.experiments.compress import CLI_FIELDS as COMPRESS_CLI_FIELDS
from anchorlens.experiments.compress import CompressConfig, CompressResult, run_compress
from anchorlens.experiments.diagnose import DiagnoseConfig, DiagnoseResult, run_diagnose
from anchorlens.experiments.isolation import IsolationConfig, IsolationResult, run_isolation
from anchorlens.experiments.reweight import CLI_FIELDS as REWEIGHT_CLI_FIELDS
from anchorlens.experiments.reweight import ReweightConfig, ReweightResult, run_reweight
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
    "isolation": ExperimentSpec(
        IsolationConfig, IsolationResult, run_isolation, _plot("isolation"), ("k", "word_top_k")
    ),
    "auroc": ExperimentSpec(AurocConfig, AurocResult, run_auroc, _plot("auroc")),
    "diagnose": ExperimentSpec(DiagnoseConfig, DiagnoseResult, run_diagnose, _plot("diagnose"), ("layer",)),
    "reweight": ExperimentSpec(ReweightConfig, ReweightResult, run_reweight, _plot("reweight"), REWEIGHT_CLI_FIELDS),
    "compress": ExperimentSpec(CompressConfig, CompressResult, run_compress, _plot("compress"), COMPRESS_CLI_FIELDS),
}


def run_experiment(
    name: str,
    model,
    tasks,
    config: ExperimentConfig,
    out,
    *,
    progress: bool = True,
    figure: bool = True,
) -> ExperimentResult:
    """Run one experiment over several tasks into `out` (resuming), then save the combined table and figure.

    `model` is a loaded model or a model name (loaded here). Returns the result of everything in `out`,
    so several invocations into one folder (other tasks, more seeds) add up.

    Under torchrun or accelerate launch each rank computes its share of the (task, seed) parts and rank 0
    alone writes the combined table and figure; every rank returns the combined result (docs/scaling.md).
    """
    import dataclasses
    import os
    import warnings
    from pathlib import Path

    from anchorlens.errors import InvalidConfigError

    from anchorlens.distributed import init_distributed, place_rank, run_shard
    from anchorlens.models import expected_recorded_name, load_model
    from anchorlens.plots import save_figure
    from anchorlens.runs import check_folder
    from anchorlens.tasks import get_task

    spec = EXPERIMENTS[name]
    tasks = [get_task(task) for task in tasks]  # unknown tasks fail before a model loads
    process = init_distributed()
    if isinstance(model, str):
        expected = dataclasses.replace(config, model=config.model or expected_recorded_name(model))
        check_folder(out, name, expected.signature())  # settings are checked before the model loads
        model = load_model(model, device=place_rank(process, None))
    config = config.for_model(model)
    check_folder(out, name, config.signature())
    progress = progress and process.is_main  # one set of progress bars, not one per rank
    with warnings.catch_warnings():
        warnings.filterwarnings("once", message="label word")
        if process.is_distributed:

            def run_part(task, seed: int) -> None:
                # One seed through the ordinary path: the part is computed exactly as in a single process.
                spec.run(model, task, dataclasses.replace(config, seeds=(seed,)), out=out, progress=progress)

            run_shard(name, run_part, tasks, config, out, process, progress=progress)
        else:
            for task in tasks:
                spec.run(model, task, config, out=out, progress=progress)
    result = spec.result_class.from_folder(out, config)
    if process.is_main:
        try:
            result.save(out)
            if figure:
                save_figure(spec.plot(result), Path(out) / name)
        except InvalidConfigError as error:  # a finished, read-only folder can still be read and summarised
            if not os.access(out, os.W_OK):
                warnings.warn(f"{error}; the combined tables and figure were not written", stacklevel=2)
            else:
                raise
    return result


__all__ = [
    "run_experiment",
    "EXPERIMENTS",
    "AurocConfig",
    "AurocResult",
    "CompressConfig",
    "CompressResult",
    "run_compress",
    "DiagnoseConfig",
    "DiagnoseResult",
    "run_diagnose",
    "IsolationConfig",
    "IsolationResult",
    "ReweightConfig",
    "ReweightResult",
    "run_reweight",
    "SaliencyConfig",
    "SaliencyResult",
    "run_auroc",
    "run_isolation",
    "run_saliency",
]
