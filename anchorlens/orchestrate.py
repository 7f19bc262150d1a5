"""Running experiments by name: `run_experiment` runs one over several tasks into a folder, resuming, and writes
the combined table and figure. The command line, `anchorlens.reproduce` and the analyses scripts all go through
here; the run itself is prepared once (`anchorlens.preparation.prepare_runs`).

The experiments themselves (`anchorlens.experiments`) know nothing of figures, folders of several tasks or
data-parallel launchers: those sit on this layer, above them.
"""

from __future__ import annotations

import warnings

from anchorlens.distributed import run_shard
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult, outputs_deferred
from anchorlens.model_classes import Model
from anchorlens.outputs import write_outputs
from anchorlens.preparation import PreparedRun, prepare_run, run_prepared, torch_dtype
from anchorlens.registry import EXPERIMENTS

__all__ = ["EXPERIMENTS", "run_experiment", "run_prepared_experiment", "torch_dtype"]


def run_experiment(
    name: str,
    model: Model | str,
    tasks,
    config: ExperimentConfig,
    out,
    *,
    progress: bool = True,
    figure: bool = True,
    image_format: str | None = None,
) -> ExperimentResult:
    """Run one experiment over several tasks into `out` (resuming), then write the folder's combined outputs
    (`anchorlens.outputs.write_outputs`: tables, figures sharing one plotly.min.js, README.md).

    `model` is a loaded model or a model name, loaded here in ``config.dtype``. Returns the result of
    everything in `out`, so several invocations into one folder (other tasks, more seeds) add up.

    Under torchrun or accelerate launch each rank computes its share of the (task, seed) parts and rank 0
    alone writes the combined table and figure; every rank returns the combined result (docs/scaling.md).

    Args:
        name: the experiment, a key of `EXPERIMENTS` (``"saliency"``, ``"isolation"``, ...).
        model: a loaded model, or a model name to load here.
        tasks (Iterable[str | Task]): the tasks, by name or as `Task`s.
        config: the experiment's config (its class in the registry, e.g. `SaliencyConfig`).
        out (str | Path): the results folder; parts already in it are resumed, not recomputed.
        progress: show progress bars (on rank 0 only when distributed).
        figure: also draw and save the experiment's figures.
        image_format: also write each figure as ``"png"``, ``"svg"`` or ``"pdf"`` (needs kaleido).

    Returns:
        The result of everything in `out` (its `to_frame`, `examples`, `summary_with_ci`).

    Examples:
        >>> import tempfile, anchorlens as al
        >>> config = al.AurocConfig(seeds=(42,), n_test=2)
        >>> result = al.run_experiment("auroc", al.random_model(), ["sst2"], config, tempfile.mkdtemp(), progress=False)
        >>> result.to_frame().shape
        (2, 8)
    """
    run = prepare_run(EXPERIMENTS[name], model, tasks, config, out)
    return run_prepared_experiment(run, progress=progress, figure=figure, image_format=image_format)


def run_prepared_experiment(
    run: PreparedRun, *, progress: bool = True, figure: bool = True, image_format: str | None = None
) -> ExperimentResult:
    """`run_experiment` of a prepared run (`anchorlens.preparation.prepare_runs`): every task of the run into its
    folder, this rank's share of the parts when distributed, then the folder's combined outputs (rank 0).

    Args:
        run: the prepared run; its folder must be set.
        progress: show progress bars (on rank 0 only when distributed).
        figure: also draw and save the experiment's figures.
        image_format: also write each figure as ``"png"``, ``"svg"`` or ``"pdf"`` (needs kaleido).

    Returns:
        The result of everything in the run's folder.
    """
    name, process, out = run.experiment.name, run.process, run.out
    assert out is not None, "an experiment run by name writes into a folder"
    progress = progress and process.is_main  # one set of progress bars, not one per rank
    with warnings.catch_warnings(), outputs_deferred():  # the combined outputs are written once, below
        warnings.filterwarnings("once", message="label word")
        if process.is_distributed:

            def run_part(task, seed: int) -> None:
                # One seed through the ordinary path: the part is computed exactly as in a single process.
                run_prepared(run, task, progress=progress, seeds=(seed,))

            run_shard(name, run_part, run.tasks, run.config, out, process, progress=progress, folder_checked=True)
        else:
            for task in run.tasks:
                run_prepared(run, task, progress=progress)
    if process.is_main:
        return write_outputs(name, out, run.config, figure=figure, image_format=image_format)
    return run.experiment.result_class.from_folder(out, run.config)
