"""One-command paper reproduction: every experiment on one model, resumable, with a report and a manifest.

``reproduce(ReproduceConfig(...), out)`` runs each experiment into ``out/<experiment>/`` (finished
(task, seed) parts are kept and skipped on a rerun), then writes ``out/report.md`` with each experiment's
table, the paper's expectation beside it and links to the figures, and ``out/manifest.json`` (package
versions, model name and weight hashes, seeds, sizes, wall time).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from anchorlens import paper
from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import ConfigT, Dtype, ExperimentConfig, restated, setting
from anchorlens.models import DEFAULT_MODEL, OFFLINE_MODELS, weights_fingerprint

if TYPE_CHECKING:
    from anchorlens.preparation import Experiment


def _default_experiments() -> tuple[str, ...]:
    from anchorlens.registry import EXPERIMENTS

    return tuple(name for name, spec in EXPERIMENTS.items() if spec.paper)


#: The main job's sizes, where they differ from `ExperimentConfig`'s defaults: one of the paper's seeds and 20
#: test inputs per task, so that every experiment on the four tasks fits minutes of 2 CPU cores (with each
#: experiment's lighter settings, `Experiment.main_job`; the measured time: `measured_main_job`). The paper's
#: sizes are `paper.SEEDS` and `paper.N_TEST`.
MAIN_JOB_SEEDS: tuple[int, ...] = paper.SEEDS[:1]
MAIN_JOB_N_TEST = 20


@dataclass(frozen=True)
class ReproduceConfig:
    """Sizes of the reproduction. The defaults are the README's main job: small enough for 2 CPU cores.

    ``seeds``, ``n_test``, ``batch_size`` and ``dtype`` are `ExperimentConfig`'s settings (`SHARED_SETTINGS`),
    restated from its fields (help text, option) and checked by it; only the main job's defaults
    (`MAIN_JOB_SEEDS`, `MAIN_JOB_N_TEST`) differ. `experiment_config` makes each experiment's config from them,
    `settings_of` adds an experiment's lighter main-job settings unless ``full``."""

    model: str = setting(DEFAULT_MODEL, "model name (see `anchorlens models`)")
    tasks: tuple[str, ...] = setting(
        paper.TASKS, "tasks (see `anchorlens tasks`); --task is the same option", aliases=("--task",)
    )
    seeds: tuple[int, ...] = restated(ExperimentConfig, "seeds", default=MAIN_JOB_SEEDS)
    # a number: the expected time is scaled by it (in an experiment's config, None takes the whole split)
    n_test: int = restated(
        ExperimentConfig,
        "n_test",
        default=MAIN_JOB_N_TEST,
        help_text=f"test inputs per task and seed, at most the task's 1000 (paper: {paper.N_TEST})",
    )
    batch_size: int = restated(ExperimentConfig, "batch_size")
    experiments: tuple[str, ...] = setting(
        help_text="a subset of the experiments", default_factory=_default_experiments, default_text="all six"
    )
    dtype: Dtype = restated(ExperimentConfig, "dtype")
    full: bool = setting(
        False,
        "run every experiment at its full settings rather than the main job's lighter ones (listed in the report: "
        f"isolation at the paper's k = {paper.ISOLATION_MAIN_K} alone, fewer random draws, ...)",
    )

    def __post_init__(self) -> None:
        from anchorlens.registry import EXPERIMENTS

        unknown = [name for name in self.experiments if name not in EXPERIMENTS]
        if unknown:
            raise InvalidConfigError(f"unknown experiments {unknown}; choose from {', '.join(EXPERIMENTS)}")
        if self.n_test is None:
            raise InvalidConfigError(
                "ReproduceConfig.n_test must be a number of test inputs per task and seed "
                f"(the paper's is {paper.N_TEST})"
            )
        # the experiments' own checks and normalisation (seeds as a tuple of ints), one source for both configs
        object.__setattr__(self, "seeds", self.experiment_config(ExperimentConfig).seeds)

    def experiment_config(self, config_class: type[ConfigT]) -> ConfigT:
        """An experiment's config (`config_class`, its other fields at their defaults) with this reproduction's
        values of the settings it restates from `ExperimentConfig` (`SHARED_SETTINGS`): the one place the two
        configs meet."""
        return config_class(**{name: getattr(self, name) for name in SHARED_SETTINGS})

    def lighter_settings(self, experiment: Experiment) -> dict[str, Any]:
        """The settings `experiment` runs with here in place of its config's defaults: its main-job settings
        (`Experiment.main_job`), none with `full`."""
        return {} if self.full else dict(experiment.main_job)

    def settings_of(self, experiment: Experiment) -> ExperimentConfig:
        """The config `experiment` runs with in this reproduction: the shared settings (`experiment_config`)
        and, unless `full`, the experiment's lighter main-job settings."""
        return dataclasses.replace(self.experiment_config(experiment.config_class), **self.lighter_settings(experiment))


#: The settings `ReproduceConfig` restates from `ExperimentConfig` (same option, help and checks; ``model`` is
#: not one: here it is the model to load, there the name results are recorded under).
SHARED_SETTINGS: tuple[str, ...] = tuple(
    field.name
    for field in dataclasses.fields(ReproduceConfig)
    if field.name in {other.name for other in dataclasses.fields(ExperimentConfig)} and field.name != "model"
)


#: The newest measured wall time of the main job, copied into the package from its record in
#: ``benchmarks/results/reproduce-<commit>.json`` by ``benchmarks/reproduce_time.py`` (a test checks the copy).
MAIN_JOB_TIME_FILE = Path(__file__).parent / "data" / "main_job_time.json"


def measured_main_job() -> dict[str, Any] | None:
    """The newest measured main job (commit, seconds, CPU cores, peak memory, transformer-lens line), or None
    where none has been recorded."""
    if not MAIN_JOB_TIME_FILE.is_file():
        return None
    return json.loads(MAIN_JOB_TIME_FILE.read_text(encoding="utf-8"))


def help_description() -> str:
    """What ``anchorlens reproduce --help`` says before the options: what it does, its default sizes (read from
    `ReproduceConfig` and the declarations, so they cannot drift), and its expected time (the newest measured
    run, and how the time is estimated while it runs)."""
    from anchorlens.registry import EXPERIMENTS

    defaults = ReproduceConfig()
    n_parts = len(defaults.tasks) * len(defaults.seeds)
    lighter = [
        f"{name} {lighter_text(EXPERIMENTS[name], values)}"
        for name in defaults.experiments
        if (values := defaults.lighter_settings(EXPERIMENTS[name]))
    ]
    measured = measured_main_job()
    timing = "Expected time: not measured yet."
    if measured is not None:
        seconds = measured["seconds"]
        timing = (
            f"Expected time: the default job took {seconds:.0f} s (about {round(seconds / 60)} min) on "
            f"{measured['cpu_count']} CPU cores when last measured (commit {measured['commit']}, transformer-lens "
            f"{measured['transformer_lens']})."
        )
    return (
        "Run every analysis and method of the paper on one model into --out, resumably (finished (task, seed) "
        "parts are kept and skipped on a rerun), and write OUT/report.md: each table beside the paper's, with "
        "links to the figures.\n\n"
        f"Defaults (the main job, a smoke size): model {defaults.model} in {defaults.dtype}; tasks "
        f"{' '.join(defaults.tasks)}; seeds {paper.seeds_text(defaults.seeds)}; {defaults.n_test} test inputs per "
        f"task and seed (--n-test); experiments {' '.join(defaults.experiments)}, lighter where listed ("
        f"{'; '.join(lighter)}; --full runs the full settings): {n_parts} (task, seed) parts per experiment, "
        f"{n_parts * len(defaults.experiments)} in all. The paper's size: --seeds {paper.seeds_text()} "
        f"--n-test {paper.N_TEST} --full.\n\n"
        f"{timing} The time grows with the number of parts (tasks x seeds), with --n-test and with --full. While it "
        "runs it prints each finished part and the expected remaining time, from the compute time recorded in each "
        'finished part (docs/reproduce.md, "Timing").'
    )


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


def size_text(config: ReproduceConfig) -> str:
    """The report's paragraph on the run's size: whether its numbers are at a smoke size (fewer seeds or test
    inputs than the paper's, or the experiments' lighter main-job settings), which, and the full sizes."""
    from anchorlens.registry import EXPERIMENTS

    smaller = []
    if len(config.seeds) < len(paper.SEEDS):
        smaller.append(f"{len(config.seeds)} of the paper's {len(paper.SEEDS)} seeds")
    if config.n_test < paper.N_TEST:
        smaller.append(f"{config.n_test} test inputs per task and seed, not {paper.N_TEST}")
    lighter = {name: config.lighter_settings(EXPERIMENTS[name]) for name in config.experiments}
    smaller += [f"{name} {lighter_text(EXPERIMENTS[name], values)}" for name, values in lighter.items() if values]
    paper_size = f"`--seeds {paper.seeds_text()} --n-test {paper.N_TEST} --full`"
    if not smaller:
        return f"Size: the paper's ({paper_size})."
    return (
        f"Size: a smoke test, not the paper's: {'; '.join(smaller)}. Read the tables as a check that every "
        f"experiment runs and points the paper's way, not as its numbers; the paper's size is {paper_size}, and "
        "docs/results.md has anchorlens's committed results at larger sizes."
    )


def _setting_text(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def lighter_text(experiment: Experiment, lighter: dict[str, Any]) -> str:
    """``k 5 (full: 1 3 5 7)``: each lighter setting of `experiment` beside its config's default."""
    defaults = experiment.config_class()
    return ", ".join(
        f"{name} {_setting_text(value)} (full: {_setting_text(getattr(defaults, name))})"
        for name, value in lighter.items()
    )


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


def _pending_parts(folder: Path, run) -> int:
    """How many (task, seed) parts of a prepared run are not yet finished in `folder`."""
    from anchorlens.runs import part_path

    name = run.experiment.name
    return sum(
        not part_path(folder, name, task.name, seed).is_file() for task in run.tasks for seed in run.config.seeds
    )


def _report_section(name: str, result, out: Path, lighter: dict[str, Any]) -> list[str]:
    """The report's section of one experiment: the paper's finding (its declaration's expectation), the lighter
    settings it ran with (`ReproduceConfig.lighter_settings`, beside their full values), its table, then links
    to every figure written into its folder (the main ``<name>.html`` first, then the further figures, e.g.
    isolation across k) and to its table."""
    from anchorlens.registry import EXPERIMENTS

    experiment = EXPERIMENTS[name]
    lines = [f"## {name}", "", f"Paper: {experiment.expectation}", ""]
    if lighter:
        smoke = lighter_text(experiment, lighter)
        lines += [f"Main-job settings (smoke size): {smoke}; `--full` runs the full ones.", ""]
    lines += [markdown_table(result.report_table()), ""]
    figures = sorted((out / name).glob("*.html"), key=lambda path: (path.stem != name, path.name))
    links = [f"[{name}/{path.name}]({name}/{path.name})" for path in figures]
    lines += [f"Figures: {', '.join(links)}; table: [{name}/{name}.csv]({name}/{name}.csv)", ""]
    return lines


#: The n_test of each experiment's measured seconds per part (`Experiment.reference_part_seconds`: the estimate
#: before a part of an experiment has been measured in the output folder, scaled linearly with n_test). Measured
#: at the main job's sizes and lighter settings (n_test 20, batch 8) on the default model: a quarter of each
#: experiment's seconds (four tasks) in the measured main job's record (`measured_main_job`; 377 s in all at
#: b831c6e, benchmarks/results/reproduce-b831c6e.json).
REFERENCE_N_TEST = MAIN_JOB_N_TEST


class RemainingTime:
    """Expected remaining time of a reproduction from measured per-part costs.

    A part's cost is the mean recorded compute time of that experiment's parts in the output folder (this
    run's and earlier runs'); before any is measured, the declared `Experiment.reference_part_seconds` scaled
    by n_test.
    """

    def __init__(self, config: ReproduceConfig, out: Path, pending: dict[str, int]):
        self.config, self.out, self.pending = config, out, dict(pending)

    def _cost(self, experiment: str) -> float | None:
        from anchorlens.registry import EXPERIMENTS
        from anchorlens.runs import part_seconds

        measured = part_seconds(self.out / experiment, experiment)
        if measured:
            return sum(measured) / len(measured)
        declared = EXPERIMENTS[experiment]
        if self.config.lighter_settings(declared) != declared.main_job:
            return None  # measured at the main job's lighter settings only (--full runs more)
        reference = declared.reference_part_seconds
        return None if reference is None else reference * self.config.n_test / REFERENCE_N_TEST

    def seconds_left(self) -> tuple[float, list[str]]:
        """(seconds, experiments whose cost is not known yet)."""
        total, unknown = 0.0, []
        for experiment, count in self.pending.items():
            if count == 0:
                continue
            cost = self._cost(experiment)
            if cost is None:
                unknown.append(experiment)
            else:
                total += count * cost
        return total, unknown

    def part_written(self, experiment: str, task: str, seed: int, seconds: float | None) -> None:
        self.pending[experiment] = max(0, self.pending.get(experiment, 0) - 1)
        left, unknown = self.seconds_left()
        took = "" if seconds is None else f" in {seconds:.1f} s"
        more = f" (+ {', '.join(unknown)}, not yet measured)" if unknown else ""
        print(f"[reproduce] {experiment} {task} seed {seed} done{took}; about {_duration(left)} left{more}", flush=True)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def reproduce(
    config: ReproduceConfig, out: str | Path, *, progress: bool = True, device: str | None = None, n_devices: int = 1
) -> Path:
    """Run every experiment of `config` into `out` and write the report; returns the report's path.

    `device` and `n_devices` place the model (see `load_model`). Under torchrun or accelerate launch the ranks
    share each experiment's parts and rank 0 alone writes the report and manifest (docs/scaling.md).
    """
    from anchorlens.distributed import init_distributed
    from anchorlens.files import atomic_write_text
    from anchorlens.orchestrate import run_prepared_experiment
    from anchorlens.preparation import Plan, prepare_runs
    from anchorlens.registry import EXPERIMENTS
    from anchorlens.runs import check_out_path, on_part_written

    out = check_out_path(out)
    started = time.perf_counter()
    for name in config.experiments:  # each experiment's folder is one anchorlens makes inside --out
        if (out / name).is_symlink():
            raise InvalidConfigError(
                f"{out / name} is a symbolic link; anchorlens does not follow links inside its output folders: "
                "remove the link, or choose another --out"
            )
    plans = [Plan(EXPERIMENTS[name], config.settings_of(EXPERIMENTS[name]), out / name) for name in config.experiments]
    # tasks, folders (before the model loads), model, hooks: each checked once for all the experiments
    runs = prepare_runs(config.model, config.tasks, plans, device=device, n_devices=n_devices)
    process = runs[0].process if runs else init_distributed()
    timings, sections = {}, []
    pending = {run.experiment.name: _pending_parts(out / run.experiment.name, run) for run in runs}
    estimate = RemainingTime(config, out, pending)
    if process.is_main:
        left, unknown = estimate.seconds_left()
        more = f" + {', '.join(unknown)} (not yet measured)" if unknown else ""
        print(
            f"[reproduce] {sum(pending.values())} parts to compute; expected about {_duration(left)}{more}", flush=True
        )
    with on_part_written(estimate.part_written if process.is_main else lambda *args: None):
        for run in runs:
            began = time.perf_counter()
            result = run_prepared_experiment(run, progress=progress)
            timings[run.experiment.name] = round(time.perf_counter() - began, 1)
            sections += _report_section(run.experiment.name, result, out, config.lighter_settings(run.experiment))
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
        size_text(config),
        "",
    ]
    atomic_write_text(report, "\n".join(header + sections))
    return report
