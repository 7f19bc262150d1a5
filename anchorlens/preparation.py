"""Each experiment declared once, each run prepared once.

An experiment module declares itself in one place, ``EXPERIMENT = Experiment(...)``: its name, config and result
classes, its per-seed function, its figures, its command-line help and the part of the paper it reproduces.
`anchorlens.registry` finds the declarations by importing the modules of `anchorlens.experiments`; the public
``run_<name>`` function, the command-line subcommand, `anchorlens reproduce`'s list and ``anchorlens.__all__`` are
made from them.

Every run, from the command line, a Python ``run_*`` call, `anchorlens reproduce`, the distributed runner or an
analyses script, goes through `prepare_runs` once, in the order the data flows: the tasks are resolved, the model
name is resolved and the folder checked (before a model by name loads), the model is loaded (its class chosen by
`anchorlens.model_classes.default_model_class`) or taken as given, the config takes the model's recorded name and
files (`ExperimentConfig.for_model`), and the model's attention hooks are verified and its folded biases warned
of. `run_prepared` then runs the experiment's per-seed function over the seeds of one task.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import torch

from anchorlens.distributed import Process, init_distributed, place_rank, process_from_env
from anchorlens.experiments.common import (
    ExperimentConfig,
    ExperimentResult,
    SeedOutput,
    finish_run,
    prepared_model,
    run_seeds,
)
from anchorlens.hooks import verify_attention_hooks
from anchorlens.model_classes import Model, warn_if_value_biases_folded
from anchorlens.models import DEFAULT_MODEL, expected_recorded_name, load_model, model_files_sha256
from anchorlens.runs import check_folder
from anchorlens.tasks import Task, get_task

ConfigT = TypeVar("ConfigT", bound=ExperimentConfig)
ResultT = TypeVar("ResultT", bound=ExperimentResult)
ConfigT_contra = TypeVar("ConfigT_contra", bound=ExperimentConfig, contravariant=True)
ResultT_co = TypeVar("ResultT_co", bound=ExperimentResult, covariant=True)

#: An experiment's per-seed function: given the prepared model, one task, the prepared config, the folder and
#: whether to show progress, it checks what the experiment needs of the model (before any work) and returns the
#: function that computes one seed.
PerSeed = Callable[..., Callable[[int], SeedOutput]]


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a config's ``dtype`` name (``"bfloat16"`` → ``torch.bfloat16``)."""
    return getattr(torch, name)


@runtime_checkable
class RunFunction(Protocol[ConfigT_contra, ResultT_co]):
    """The type of a public ``run_<experiment>`` function (`Experiment.run_function`)."""

    def __call__(
        self,
        model: Model,
        task: Task | str,
        config: ConfigT_contra = ...,
        *,
        out: str | Path | None = None,
        progress: bool = True,
    ) -> ResultT_co: ...


#: What every ``run_<experiment>`` docstring says of its arguments (one text, not one copy per experiment).
_RUN_ARGUMENTS = """Args:
    model: {model}
    task: a task name or `Task`.
    config: the settings (`{config}`); `config.model` left None takes the model's recorded name.
    out: a folder to save each (task, seed) part in as it finishes, and to resume from.
    progress: show progress bars.

Returns:
    {returns}
"""


@dataclass(frozen=True)
class Experiment(Generic[ConfigT, ResultT]):
    """One experiment, declared once in its own module as ``EXPERIMENT = Experiment(...)``.

    The keyword values written as literals (`name`, `order`, `help`, `details`, `section`) are also read from
    the module's source without importing it (`anchorlens.catalog`), so that ``import anchorlens`` and
    ``anchorlens tasks`` stay fast; write them as plain strings and numbers.
    """

    #: The experiment's name: its subcommand, results folder files (``<name>.csv``) and ``run_<name>``.
    name: str
    config_class: type[ConfigT]
    result_class: type[ResultT]
    #: (model, task, config, out=, progress=) → the function of one seed (`PerSeed`).
    per_seed: PerSeed
    #: Its place in the order the experiments run and are listed in (``anchorlens --help``, `reproduce`).
    order: int
    #: The command line's one-line help (what it measures, and the paper's figure or table).
    help: str
    #: The first paragraph of ``run_<name>``'s docstring, and what its ``Returns:`` says.
    summary: str
    returns: str
    #: The functions that draw the result, the main figure (``plot_<name>``) first: a name in `anchorlens.plots`,
    #: or ``"module:function"`` for one elsewhere; each is written as ``<function name without plot_>.html``.
    figures: tuple[str, ...]
    #: The paper's section it reproduces (``"2.1"``); None for an experiment of anchorlens's own, which
    #: `anchorlens reproduce` does not run by default.
    section: str | None = None
    #: The paper's finding, shown beside the result in `anchorlens reproduce`'s report.
    expectation: str = ""
    #: Measured seconds per (task, seed) part of the main job (`anchorlens.reproduce.REFERENCE_N_TEST` inputs)
    #: on the default model, 2 CPU cores: the time estimate before a part is measured in the folder.
    reference_part_seconds: float | None = None
    #: The command line's --help text after the first line; None says what every run command prints.
    details: str | None = None
    #: The per-example column naming the arms the experiment compares on the same test inputs (isolation's
    #: conditions, the methods of re-weighting and compression): the claims judge those arms by their paired
    #: difference (`anchorlens.claims.rules.PAIRED_ARMS`); None where the experiment compares no arms.
    paired_arm: str | None = None
    #: What ``run_<name>`` accepts as its model.
    model_text: str = "a loaded HookedTransformer or TransformerBridge."
    #: The main job's lighter settings: config field -> the value `anchorlens reproduce` uses in place of the
    #: config's default unless ``--full`` (`anchorlens.reproduce.ReproduceConfig.settings_of`), so that every
    #: experiment on the four tasks fits minutes of 2 CPU cores: the paper's main setting where the full run
    #: sweeps several (isolation at k = 5 alone), fewer random draws. The report names each beside its full value.
    main_job: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The ``>>>`` lines of ``run_<name>``'s example (its docstring's ``Examples:`` section, run as a doctest):
    #: the typical call on `anchorlens.random_model` at small settings.
    example: str = ""

    @property
    def paper(self) -> bool:
        """Whether the experiment reproduces a part of the paper."""
        return self.section is not None

    def figure_stems(self) -> dict[str, str]:
        """File stem → name of the `anchorlens.plots` function of every figure, the main one first."""
        return {function.rpartition(":")[2].removeprefix("plot_"): function for function in self.figures}

    def docstring(self) -> str:
        """``run_<name>``'s docstring: the declaration's summary and the arguments every run function shares."""
        arguments = _RUN_ARGUMENTS.format(
            model=self.model_text, config=self.config_class.__name__, returns=self.returns
        )
        if not self.example:
            return f"{self.summary}\n\n{arguments}"
        example = textwrap.indent(textwrap.dedent(self.example).strip(), "    ")
        return f"{self.summary}\n\n{arguments}\nExamples:\n{example}\n"

    def run_function(self) -> RunFunction[ConfigT, ResultT]:
        """The public ``run_<name>(model, task, config=<Config>(), *, out=None, progress=True)``: `run_one`."""
        experiment = self

        def run(
            model: Model,
            task: Task | str,
            config: ExperimentConfig | None = None,
            *,
            out: str | Path | None = None,
            progress: bool = True,
        ) -> ExperimentResult:
            return run_one(experiment, model, task, config, out=out, progress=progress)

        parameters = [
            inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Model),
            inspect.Parameter("task", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Task | str),
            inspect.Parameter(
                "config",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=self.config_class(),
                annotation=self.config_class,
            ),
            inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=str | Path | None),
            inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=True, annotation=bool),
        ]
        run.__signature__ = inspect.Signature(parameters, return_annotation=self.result_class)  # type: ignore[attr-defined]
        run.__name__ = run.__qualname__ = f"run_{self.name}"
        run.__module__ = self.result_class.__module__
        run.__doc__ = self.docstring()
        return run  # type: ignore[return-value]  # the annotations above are the declared classes'


@dataclass(frozen=True)
class PreparedRun:
    """One experiment ready to run: the model (loaded, checked), the resolved tasks, the config with the model's
    recorded name and files, and the folder, whose settings have been checked (`prepare_runs`)."""

    experiment: Experiment
    model: Model
    tasks: tuple[Task, ...]
    config: ExperimentConfig
    out: Path | str | None
    process: Process


@dataclass(frozen=True)
class Plan:
    """What a caller asks of `prepare_runs` for one experiment: its declaration, config and folder."""

    experiment: Experiment
    config: ExperimentConfig | None = None
    out: str | Path | None = None


def _expected(config: ExperimentConfig, name: str, model_class: str | None) -> ExperimentConfig:
    """The config a model loaded by `name` will give (its recorded name and files), known before it loads."""
    return dataclasses.replace(
        config,
        model=config.model or expected_recorded_name(name, model_class),
        model_files=config.model_files or model_files_sha256(name),
    )


def prepare_runs(
    model: Model | str | None,
    tasks: Iterable[Task | str],
    plans: Sequence[Plan],
    *,
    device: str | None = None,
    n_devices: int = 1,
    model_class: str | None = None,
    join_launcher: bool = True,
) -> list[PreparedRun]:
    """Prepare one or more experiments on one model: each check once, in the order the data flows.

    1. the tasks are resolved (an unknown task fails before a model loads);
    2. for a model given by name, each folder is checked against the config that model will give (seconds,
       before the model loads, minutes);
    3. the model is loaded on this rank's device (its class: `anchorlens.model_classes.default_model_class`,
       unless `model_class` names one), or the loaded model is taken as it is;
    4. each config takes the model's recorded name and files (`ExperimentConfig.for_model`: a config naming
       another model or dtype is refused), and a folder not checked in step 2 against that config is checked;
    5. the model's attention hooks are verified and folded value biases warned of, once.

    Args:
        model: a loaded model, a model name or local folder to load, or None for `DEFAULT_MODEL`.
        tasks (Iterable[str | Task]): the tasks, by name or as `Task`s.
        plans: per experiment its declaration, config (None: the defaults) and folder (None: nothing saved).
        device: where a model loaded here goes (None: TransformerLens's choice; each rank's GPU when distributed).
        n_devices: split a model loaded here over this many GPUs.
        model_class: ``"hooked"`` or ``"bridge"`` for a model loaded here; None takes the default class.
        join_launcher: join the process group of torchrun or accelerate launch, if launched by one (the runs by
            name share their parts out over the ranks); a Python ``run_*`` call computes every part itself.

    Returns:
        One `PreparedRun` per plan, in order, sharing the model and tasks.
    """
    resolved = tuple(get_task(task) for task in tasks)
    # a no-op unless launched by torchrun / accelerate launch
    process = init_distributed() if join_launcher else process_from_env()
    configs = [plan.config if plan.config is not None else plan.experiment.config_class() for plan in plans]
    checked: list[dict[str, Any] | None] = [None] * len(plans)
    if model is None or isinstance(model, str):
        name = model or DEFAULT_MODEL
        for index, (plan, config) in enumerate(zip(plans, configs)):
            if plan.out is not None:
                expected = _expected(config, name, model_class).signature()
                check_folder(plan.out, plan.experiment.name, expected)
                checked[index] = expected
        model = load_model(
            name,
            device=place_rank(process, device, n_devices=n_devices),
            n_devices=n_devices,
            model_class=model_class,
            dtype=torch_dtype(configs[0].dtype) if configs else None,
        )
    prepared = []
    for index, (plan, config) in enumerate(zip(plans, configs)):
        config = config.for_model(model)
        if plan.out is not None and config.signature() != checked[index]:
            check_folder(plan.out, plan.experiment.name, config.signature())
        prepared.append(PreparedRun(plan.experiment, model, resolved, config, plan.out, process))
    verify_attention_hooks(model)
    warn_if_value_biases_folded(model)
    return prepared


def prepare_run(
    experiment: Experiment,
    model: Model | str | None,
    tasks: Iterable[Task | str],
    config: ExperimentConfig | None = None,
    out: str | Path | None = None,
    **loading: Any,
) -> PreparedRun:
    """`prepare_runs` for one experiment (`loading`: its device, n_devices, model_class and join_launcher).

    Args:
        experiment: the experiment's declaration.
        model: a loaded model, a model name to load, or None for `DEFAULT_MODEL`.
        tasks (Iterable[str | Task]): the tasks.
        config: the experiment's config (None: its defaults).
        out: the results folder (None: nothing saved).
        **loading: `prepare_runs`'s keyword arguments.

    Returns:
        The prepared run.
    """
    return prepare_runs(model, tasks, [Plan(experiment, config, out)], **loading)[0]


def run_prepared(
    run: PreparedRun, task: Task, *, progress: bool, seeds: tuple[int, ...] | None = None
) -> ExperimentResult:
    """Run a prepared experiment over the seeds of one task (all of the config's, or `seeds`), saving each
    (task, seed) part into the run's folder as it finishes; returns the experiment's result of those seeds.

    Args:
        run: the prepared run (`prepare_runs`).
        task: one of its tasks.
        progress: show progress bars.
        seeds: a subset of the config's seeds (the distributed runner's share); None runs them all.

    Returns:
        The experiment's result (its `result_class`) of these seeds.
    """
    config = run.config if seeds is None else dataclasses.replace(run.config, seeds=seeds)
    with prepared_model(run.model):  # the analyses inside trust the preparation's hook check
        one_seed = run.experiment.per_seed(run.model, task, config, out=run.out, progress=progress)
        seed_runs = run_seeds(run.experiment.name, run.model, task, config, one_seed, out=run.out, progress=progress)
    return finish_run(run.experiment.result_class.from_run(seed_runs), run.out)


def run_one(
    experiment: Experiment,
    model: Model,
    task: Task | str,
    config: ExperimentConfig | None,
    *,
    out: str | Path | None,
    progress: bool,
) -> ExperimentResult:
    """What every ``run_<name>`` does: prepare the run (`prepare_run`) and run it over the task's seeds."""
    run = prepare_run(experiment, model, [task], config, out, join_launcher=False)
    return run_prepared(run, run.tasks[0], progress=progress)
