"""Running experiments by name: the registry of the experiments (config, result, run function, figure) and
`run_experiment`, which runs one over several tasks into a folder, resuming, and writes the combined table and
figure. The command line, `anchorlens.reproduce` and the analyses scripts all go through here.

The experiments themselves (`anchorlens.experiments`) know nothing of figures, folders of several tasks or
data-parallel launchers: those sit on this layer, above them.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch

from anchorlens.distributed import init_distributed, place_rank, run_shard
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult, outputs_deferred
from anchorlens.model_classes import Model
from anchorlens.models import expected_recorded_name, load_model, model_files_sha256
from anchorlens.outputs import write_outputs
from anchorlens.registry import EXPERIMENTS
from anchorlens.runs import check_folder
from anchorlens.tasks import get_task


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a config's ``dtype`` name (``"bfloat16"`` → ``torch.bfloat16``)."""
    return getattr(torch, name)


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
        name: the experiment, a key of `EXPERIMENTS` (``"saliency"``, ``"isolation"``, ``"auroc"``,
            ``"diagnose"``, ``"reweight"``, ``"compress"``, ``"heads"``).
        model: a loaded model, or a model name to load here.
        tasks (Iterable[str | Task]): the tasks, by name or as `Task`s.
        config: the experiment's config (its class in the registry, e.g. `SaliencyConfig`).
        out (str | Path): the results folder; parts already in it are resumed, not recomputed.
        progress: show progress bars (on rank 0 only when distributed).
        figure: also draw and save the experiment's figures.
        image_format: also write each figure as ``"png"``, ``"svg"`` or ``"pdf"`` (needs kaleido).

    Returns:
        The result of everything in `out` (its `to_frame`, `examples`, `summary_with_ci`).
    """
    spec = EXPERIMENTS[name]
    tasks = [get_task(task) for task in tasks]  # unknown tasks fail before a model loads
    process = init_distributed()
    if isinstance(model, str):
        expected = dataclasses.replace(
            config,
            model=config.model or expected_recorded_name(model),
            model_files=config.model_files or model_files_sha256(model),
        )
        check_folder(out, name, expected.signature())  # settings are checked before the model loads
        model = load_model(model, device=place_rank(process, None), dtype=torch_dtype(config.dtype))
    config = config.for_model(model)
    check_folder(out, name, config.signature())
    progress = progress and process.is_main  # one set of progress bars, not one per rank
    with warnings.catch_warnings(), outputs_deferred():  # the combined outputs are written once, below
        warnings.filterwarnings("once", message="label word")
        if process.is_distributed:

            def run_part(task, seed: int) -> None:
                # One seed through the ordinary path: the part is computed exactly as in a single process.
                spec.run(model, task, dataclasses.replace(config, seeds=(seed,)), out=out, progress=progress)

            run_shard(name, run_part, tasks, config, out, process, progress=progress)
        else:
            for task in tasks:
                spec.run(model, task, config, out=out, progress=progress)
    if process.is_main:
        return write_outputs(name, out, config, figure=figure, image_format=image_format)
    return spec.result_class.from_folder(out, config)
