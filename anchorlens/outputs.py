"""A results folder's combined outputs, written the same way from Python and the command line, and read back.

`write_outputs` is what ``run_<experiment>(..., out=DIR)``, `anchorlens.orchestrate.run_experiment` and every
``anchorlens <experiment> --out DIR`` call once the parts are finished: the combined tables of everything in the
folder, the figures (sharing one ``plotly.min.js``; optionally static copies) and a ``README.md`` naming the
folder's files and their columns. `load_result` reads a folder back as the experiment's result.

`OUTPUT_FILES` describes each file once: the folder's README is generated from it, and the docs' list of
outputs (docs/experiments/index.md) is checked against it (tests/test_outputs.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import ExperimentConfig, ExperimentResult
from anchorlens.files import atomic_write_text
from anchorlens.runs import MANIFEST, read_manifest
from anchorlens.version import __version__

#: (file name pattern, what it holds) of every file of a results folder; ``{experiment}`` and ``{figure}`` are
#: filled in per experiment. The folder's README.md and docs/experiments/index.md both say these words.
OUTPUT_FILES: tuple[tuple[str, str], ...] = (
    ("{experiment}.csv", "the seed rows (also as `.parquet`)"),
    (
        "{experiment}_examples.parquet",
        "one row per test input × layer / condition / method, with `example` (the test row), `gold` and the prediction",
    ),
    (
        "{experiment}_summary.csv",
        "every summary mean with a 95% seed-level t-interval floored by the test inputs' error",
    ),
    ("{figure}.html", "the figure (plotly); it opens offline with `plotly.min.js` beside it"),
    ("plotly.min.js", "plotly.js, once for every figure of the folder"),
    (MANIFEST, "the results format, anchorlens version, model and each experiment's settings"),
    ("parts/", "one verified part per (experiment, task, seed), written as each finishes; a rerun resumes them"),
)


def _described(pattern: str) -> str:
    return next(text for name, text in OUTPUT_FILES if name == pattern)


def write_outputs(
    experiment: str,
    out: str | Path,
    config: ExperimentConfig | None = None,
    *,
    figure: bool = True,
    image_format: str | None = None,
) -> ExperimentResult:
    """Write the combined outputs of every finished part of `experiment` in `out` and return that result.

    The tables (`ExperimentResult.save`), the figures as HTML sharing one ``plotly.min.js`` (and, with
    `image_format` ``"png"``, ``"svg"`` or ``"pdf"``, a static copy of each, which needs kaleido) and the
    folder's ``README.md``. A read-only folder is read and summarised with a warning instead.
    """
    from anchorlens.plots import save_figure
    from anchorlens.registry import EXPERIMENTS, figures

    result = EXPERIMENTS[experiment].result_class.from_folder(out, config)
    try:
        result.save(out)
        if figure:
            for stem, plot in figures(experiment).items():
                drawn = plot(result)
                save_figure(drawn, Path(out) / stem, plotlyjs="beside")
                if image_format is not None and image_format != "html":
                    save_figure(drawn, Path(out) / stem, format=image_format)
        atomic_write_text(Path(out) / "README.md", folder_readme(out))
    except InvalidConfigError as error:  # a finished, read-only folder can still be read and summarised
        if not os.access(out, os.W_OK):
            warnings.warn(f"{error}; the combined tables and figure were not written", stacklevel=2)
        else:
            raise
    return result


def rewrite_folder(out: str | Path, *, image_format: str | None = None) -> list[str]:
    """Rewrite the combined outputs of every experiment in a results folder from its saved parts (no model
    loads, nothing is recomputed): after an upgrade, or to turn figures with plotly.js inlined into figures
    sharing one ``plotly.min.js``. Returns the experiments rewritten."""
    from anchorlens.registry import EXPERIMENTS

    held = [name for name in read_manifest(Path(out)).get("experiments", {}) if name in EXPERIMENTS]
    if not held:
        raise InvalidConfigError(f"{out} holds no anchorlens results (no experiment in its {MANIFEST})")
    for experiment in held:
        write_outputs(experiment, out, image_format=image_format)
    return held


def _columns_of(path: Path) -> list[str] | None:
    """The columns of a table file, or None where it cannot be read (a damaged table of another experiment in
    the folder is that experiment's to recompute when it is read; the README only describes it)."""
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".csv":
            return [str(column) for column in pd.read_csv(path, nrows=0).columns]
        return list(pq.read_schema(path).names)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):  # pyarrow's errors are ValueErrors
        return None


def folder_readme(out: str | Path) -> str:
    """The README.md of a results folder: its model, and per experiment the files there, what each holds
    (`OUTPUT_FILES`) and the columns of each table as written."""
    from anchorlens.registry import EXPERIMENTS

    out = Path(out)
    manifest = read_manifest(out)
    lines = [
        "# anchorlens results",
        "",
        f"Written by anchorlens {__version__} for model `{manifest.get('model', '?')}`. Read a folder back in "
        "Python with `anchorlens.load_result(folder, experiment)`; rerunning the same command resumes it. "
        "Column meanings: docs/experiments/ (one page per experiment).",
        "",
    ]
    for experiment in sorted(manifest.get("experiments", {})):
        if experiment not in EXPERIMENTS:
            continue
        lines += [f"## {experiment}", ""]
        tables = [
            (f"{experiment}.csv", "{experiment}.csv"),
            (f"{experiment}_examples.parquet", "{experiment}_examples.parquet"),
            (f"{experiment}_summary.csv", "{experiment}_summary.csv"),
        ]
        for name, pattern in tables:
            if (out / name).is_file():
                found = _columns_of(out / name)
                columns = ", ".join(f"`{column}`" for column in found) if found is not None else "unreadable now"
                lines.append(f"- `{name}`: {_described(pattern)}. Columns: {columns}.")
        for stem in EXPERIMENTS[experiment].figure_stems():
            found = sorted(path.name for path in out.glob(f"{stem}.*") if path.suffix in (".html", ".png", ".svg"))
            found += sorted(path.name for path in out.glob(f"{stem}.pdf"))
            if found:
                names = ", ".join(f"`{name}`" for name in found)
                lines.append(f"- {names}: {_described('{figure}.html')}.")
        lines.append("")
    lines.append("## Also here")
    lines.append("")
    for pattern in ("plotly.min.js", MANIFEST, "parts/"):
        if (out / pattern.rstrip("/")).exists():
            lines.append(f"- `{pattern}`: {_described(pattern)}.")
    return "\n".join(lines) + "\n"


def load_result(directory: str | Path, experiment: str | None = None) -> ExperimentResult:
    """The result of an experiment's finished parts in a results folder (what ``--out DIR`` or ``out=DIR``
    wrote), with its ``to_frame``, ``examples``, ``summary``, ``summary_with_ci`` and the experiment's own views.

    Args:
        directory: the results folder.
        experiment: ``"saliency"``, ``"isolation"``, ... ; may be left out when the folder holds one experiment.

    Returns:
        The experiment's result class (`SaliencyResult`, `HeadsResult`, ...) of every finished, verified part.

    Raises:
        InvalidConfigError: no results there, an unknown experiment, or several in the folder and none named.

    Examples:
        >>> import tempfile, anchorlens as al
        >>> out = tempfile.mkdtemp()
        >>> _ = al.run_auroc(al.random_model(), "sst2", al.AurocConfig(seeds=(42,), n_test=2), out=out, progress=False)
        >>> type(al.load_result(out)).__name__, al.load_result(out).to_frame().shape
        ('AurocResult', (2, 8))
    """
    from anchorlens.registry import EXPERIMENTS

    directory = Path(directory)
    if not (directory / MANIFEST).is_file():
        raise InvalidConfigError(f"{directory} holds no anchorlens results (no {MANIFEST}); give a results folder")
    held = sorted(name for name in read_manifest(directory).get("experiments", {}) if name in EXPERIMENTS)
    if experiment is None:
        if len(held) != 1:
            raise InvalidConfigError(
                f"{directory} holds {len(held)} experiments ({', '.join(held) or 'none'}); name one: "
                f"load_result({str(directory)!r}, {held[0] if held else 'saliency'!r})"
            )
        experiment = held[0]
    if experiment not in EXPERIMENTS:
        raise InvalidConfigError(f"unknown experiment {experiment!r}; use one of {', '.join(EXPERIMENTS)}")
    if experiment not in held:
        raise InvalidConfigError(f"{directory} holds no {experiment} results (it holds {', '.join(held) or 'none'})")
    return EXPERIMENTS[experiment].result_class.from_folder(directory)
