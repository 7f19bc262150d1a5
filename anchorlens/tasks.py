"""The task registry: templates, label words and data for SST-2, AG News, TREC, EmoC, and custom tasks.

A `Task` says how one example becomes prompt text (SPEC §0) and where its splits live. The four paper
tasks ship as parquet files inside the package (built by ``scripts/build_data.py``; see each
``anchorlens/data/<task>/PROVENANCE.md``) so everything runs offline; the same tasks can be loaded
through ``datasets.load_dataset`` with ``source="hub"`` when the Hugging Face hub is reachable.

Every split comes back as a ``datasets.Dataset`` with exactly two columns, ``text`` (string) and
``label`` (int64 class id in ``[0, num_classes)``), validated on load so that a broken file fails here,
naming the file, instead of as a wrong number later.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import string
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from anchorlens.errors import DataFileError, InvalidConfigError, TaskDefinitionError, UnknownTaskError
from anchorlens.files import bytes_sha256, file_sha256

Source = Literal["local", "hub"]
PACKAGE_DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class HubSource:
    """Where the same task lives on the Hugging Face hub, and which columns hold text and label."""

    path: str
    name: str | None
    splits: Mapping[str, str] = field(hash=False)  # our split name -> hub split name
    text_column: str = "text"
    label_column: str = "label"


#: The longest name that becomes part of a file name (``<task>-seed<seed>.examples.parquet`` in 255 bytes).
MAX_FILE_NAME = 200


def check_file_name(name: str, what: str) -> str:
    """Refuse a name that becomes part of a file name (``parts/<experiment>/<task>-seed<seed>.csv``, β files)
    and could name another place: a path separator, ``.`` or ``..``, a leading dot, control characters, or one
    too long for a file name. Checked where the name is made, so nothing is written before the refusal."""
    bad = (
        "/" in name
        or "\\" in name
        or name in (".", "..")
        or name.startswith(".")
        or any(ord(character) < 32 or ord(character) == 127 for character in name)
        or len(name.encode("utf-8")) > MAX_FILE_NAME
    )
    if bad:
        raise TaskDefinitionError(
            f"{what} {name!r} cannot be part of a file name (results are saved as <task>-seed<seed>.*): use letters, "
            f"digits, '-' and '_' (no '/', '\\', leading '.', control characters; at most {MAX_FILE_NAME} bytes)"
        )
    return name


@dataclass(frozen=True)
class Task:
    """One classification task: how an example is written into the prompt and where its data is.

    ``template`` holds ``{text}`` then ``{label}``, with ``{label}`` last: a demonstration fills it with
    the class's label word, the query with ``""``, so the query ends right where the model must answer.
    Label words carry their own leading space (``" Positive"``), hence no space before ``{label}``.
    """

    name: str
    template: str
    #: Stored as tuples (lists are accepted and converted).
    label_words: Sequence[str]
    class_names: Sequence[str]
    demo_split: str = "train"
    test_split: str = "test"
    data_dir: Path | None = None
    hub: HubSource | None = None
    max_test: int = 1000

    def __post_init__(self) -> None:
        # Accept lists and str paths from callers, store the immutable forms.
        object.__setattr__(self, "label_words", tuple(self.label_words))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not isinstance(self.name, str) or not self.name.strip():
            raise TaskDefinitionError(f"task name must be a non-empty string, got {self.name!r}")
        check_file_name(self.name, "task name")
        self._template_pieces()  # validates the template
        self._check_words()
        for attribute in ("demo_split", "test_split"):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not value:
                raise TaskDefinitionError(f"task {self.name!r}: {attribute} must be a split name, got {value!r}")
        if isinstance(self.max_test, bool) or not isinstance(self.max_test, int) or self.max_test < 1:
            raise TaskDefinitionError(f"task {self.name!r}: max_test must be a positive integer, got {self.max_test!r}")

    def _template_pieces(self) -> tuple[str, str, str]:
        """Split the template into (before ``{text}``, between ``{text}`` and ``{label}``, after ``{label}``)."""
        fix = 'write it like "Review: {text}\\nSentiment:{label}" (double any literal braces: "{{")'
        try:
            parsed = list(string.Formatter().parse(self.template))
        except (ValueError, TypeError) as error:
            raise TaskDefinitionError(
                f"task {self.name!r}: template {self.template!r} is malformed ({error}); {fix}"
            ) from None
        fields = [(name, spec, conversion) for _, name, spec, conversion in parsed if name is not None]
        names = [name for name, _, _ in fields]
        if names.count("text") != 1 or names.count("label") != 1:
            raise TaskDefinitionError(
                f"task {self.name!r}: template {self.template!r} must contain {{text}} exactly once and {{label}} "
                f"exactly once (found {names.count('text')} and {names.count('label')}); {fix}"
            )
        others = [name for name in names if name not in ("text", "label")]
        if others:
            raise TaskDefinitionError(
                f"task {self.name!r}: template {self.template!r} has fields {others} besides {{text}} and {{label}}; "
                f"remove them or double their braces; {fix}"
            )
        if any(spec or conversion for _, spec, conversion in fields):
            raise TaskDefinitionError(
                f"task {self.name!r}: template {self.template!r} uses a format spec or conversion (like {{text!r}}); "
                f"use plain {{text}} and {{label}}"
            )
        if names != ["text", "label"]:
            raise TaskDefinitionError(
                f"task {self.name!r}: template {self.template!r} puts {{label}} before {{text}}; the text must come "
                "first"
            )
        # parse() yields (literal, field or None) items; escaped braces split a literal over several items.
        pieces = [""]
        for literal, name, _, _ in parsed:
            pieces[-1] += literal
            if name is not None:
                pieces.append("")
        prefix, middle, suffix = pieces
        if suffix:
            raise TaskDefinitionError(
                f"task {self.name!r}: template {self.template!r} has {suffix!r} after {{label}}; {{label}} must be the "
                f"last thing in the template, because the query ends where the label word would go"
            )
        return prefix, middle, ""

    def _check_words(self) -> None:
        for kind, words in (("label_words", self.label_words), ("class_names", self.class_names)):
            if any(not isinstance(word, str) or not word.strip() for word in words):
                raise TaskDefinitionError(f"task {self.name!r}: {kind} must be non-empty strings, got {words!r}")
            duplicates = sorted({word for word in words if words.count(word) > 1})
            if duplicates:
                raise TaskDefinitionError(f"task {self.name!r}: {kind} repeat {duplicates}; every class needs its own")
        if len(self.label_words) < 2:
            raise TaskDefinitionError(
                f"task {self.name!r}: {len(self.label_words)} label word(s) given; a classification task needs at "
                "least 2"
            )
        if len(self.label_words) != len(self.class_names):
            raise TaskDefinitionError(
                f"task {self.name!r}: {len(self.label_words)} label words but {len(self.class_names)} class names; "
                f"give one of each per class, in class-id order"
            )
        for word in self.label_words:
            if not word.startswith(" "):
                warnings.warn(
                    f"task {self.name!r}: label word {word!r} has no leading space; after 'Sentiment:' most tokenizers "
                    f"then produce a different token than the word has in running text. Use {' ' + word.lstrip()!r} "
                    f"unless this is intended.",
                    UserWarning,
                    stacklevel=4,
                )

    @property
    def num_classes(self) -> int:
        return len(self.label_words)

    def template_parts(self) -> tuple[str, str, str]:
        """(text before ``{text}``, text between ``{text}`` and ``{label}``, text after ``{label}`` = "")."""
        return self._template_pieces()

    def format_demonstration(self, text: str, label: int) -> str:
        """One demonstration: the template filled with ``text`` and the label word of class ``label``."""
        if not 0 <= label < self.num_classes:
            raise InvalidConfigError(f"task {self.name!r}: label {label} is outside 0..{self.num_classes - 1}")
        prefix, middle, suffix = self.template_parts()
        return prefix + text + middle + self.label_words[label] + suffix

    def format_query(self, text: str) -> str:
        """The query: the template filled with ``text`` and an empty label, ending where the answer goes."""
        prefix, middle, suffix = self.template_parts()
        return prefix + text + middle + suffix


# ---------------------------------------------------------------- registry

_REGISTRY: dict[str, Task] = {}


def register_task(task: Task, *, overwrite: bool = False) -> Task:
    """Add ``task`` under its name; a name already taken is refused unless ``overwrite``.

    Args:
        task: the task (`Task`, or one `task_from_files` made).
        overwrite: replace a task registered under the same name.

    Returns:
        The task, now reachable by name (`get_task`, ``--task`` on the CLI of this process).

    Examples:
        >>> import dataclasses, anchorlens as al
        >>> sst2 = al.get_task("sst2")
        >>> words = dataclasses.replace(sst2, name="sst2-lowercase", label_words=(" negative", " positive"))
        >>> al.register_task(words).name in al.list_tasks()
        True
    """
    if not isinstance(task, Task):
        raise TaskDefinitionError(f"register_task expects a Task, got {type(task).__name__}")
    if task.name in _REGISTRY and not overwrite:
        raise TaskDefinitionError(
            f"a task named {task.name!r} is already registered; pick another name or pass overwrite=True"
        )
    _REGISTRY[task.name] = task
    return task


def get_task(name_or_task: str | Task) -> Task:
    """The registered task of that name (a `Task` passes through unchanged).

    Args:
        name_or_task: a registered task's name (`list_tasks`) or a `Task`.

    Returns:
        The `Task`; an unknown name is an `UnknownTaskError` listing the valid ones.

    Examples:
        >>> import anchorlens as al
        >>> task = al.get_task("sst2")
        >>> task.label_words, task.class_names
        ((' Negative', ' Positive'), ('negative', 'positive'))
    """
    if isinstance(name_or_task, Task):
        return name_or_task
    try:
        return _REGISTRY[name_or_task]
    except (KeyError, TypeError):
        raise UnknownTaskError(
            f"unknown task {name_or_task!r}; valid tasks: {', '.join(list_tasks())} "
            f"(or register your own with register_task / task_from_files)"
        ) from None


def list_tasks() -> list[str]:
    """Names of the registered tasks, in registration order (the four paper tasks first).

    Returns:
        The names: ``["sst2", "agnews", "trec", "emoc"]``, then any registered since.

    Examples:
        >>> import anchorlens as al
        >>> al.list_tasks()[:4]
        ['sst2', 'agnews', 'trec', 'emoc']
    """
    return list(_REGISTRY)


register_task(
    Task(
        name="sst2",
        template="Review: {text}\nSentiment:{label}",
        label_words=(" Negative", " Positive"),
        class_names=("negative", "positive"),
        demo_split="train",
        test_split="validation",  # the paper's test set is GLUE validation (872 rows)
        data_dir=PACKAGE_DATA / "sst2",
        hub=HubSource("nyu-mll/glue", "sst2", {"train": "train", "validation": "validation"}, "sentence", "label"),
    )
)
register_task(
    Task(
        name="agnews",
        template="Article: {text}\nAnswer:{label}",
        label_words=(" World", " Sports", " Business", " Technology"),
        class_names=("World", "Sports", "Business", "Sci/Tech"),
        demo_split="train",  # locally a 638-row pool of the train split, see data/agnews/PROVENANCE.md
        test_split="test",
        data_dir=PACKAGE_DATA / "agnews",
        hub=HubSource("fancyzhx/ag_news", None, {"train": "train", "test": "test"}, "text", "label"),
    )
)
register_task(
    Task(
        name="trec",
        template="Question: {text}\nAnswer Type:{label}",
        label_words=(" Abbreviation", " Entity", " Description", " Person", " Location", " Number"),
        class_names=("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"),
        demo_split="train",
        test_split="test",
        data_dir=PACKAGE_DATA / "trec",
        hub=HubSource("CogComp/trec", None, {"train": "train", "test": "test"}, "text", "coarse_label"),
    )
)
register_task(
    Task(
        name="emoc",
        template="Dialogue: {text}\nEmotion:{label}",
        label_words=(" Others", " Happy", " Sad", " Angry"),
        class_names=("others", "happy", "sad", "angry"),
        demo_split="train",
        test_split="test",
        data_dir=PACKAGE_DATA / "emoc",
        hub=HubSource("SemEvalWorkshop/emo", None, {"train": "train", "test": "test"}, "text", "label"),
    )
)


# ---------------------------------------------------------------- loading

# (task name, split, source, data folder) -> (the task it was validated for, the split)
_SPLIT_CACHE: dict[tuple[str, str, str, str | None], tuple[Task, datasets.Dataset]] = {}


def load_split(task: str | Task, split: str, *, source: Source = "local") -> datasets.Dataset:
    """One split of a task as a ``datasets.Dataset`` with columns ``text`` and ``label`` only.

    ``source="local"`` reads the task's parquet file (offline, no Hugging Face cache writes);
    ``source="hub"`` calls ``datasets.load_dataset``. Loading is pure, so results are cached per
    (task, split, source, data folder).

    Args:
        task: a task name or `Task`.
        split: the split's name (``task.demo_split`` or ``task.test_split``).
        source: ``"local"`` (the packaged or your own parquet files) or ``"hub"``.

    Returns:
        The split's rows: ``text`` (str) and ``label`` (class id).

    Examples:
        >>> import anchorlens as al
        >>> split = al.load_split("sst2", "validation")
        >>> len(split), split.column_names
        (872, ['text', 'label'])
    """
    task = get_task(task)
    if source not in ("local", "hub"):
        raise InvalidConfigError(f"source must be 'local' or 'hub', got {source!r}")
    key = (task.name, split, source, None if task.data_dir is None else str(task.data_dir))
    cached = _SPLIT_CACHE.get(key)
    if cached is not None and cached[0] == task:  # a redefined task (other classes) is validated afresh
        return cached[1]
    table = _read_local(task, split) if source == "local" else _read_hub(task, split)
    dataset = datasets.Dataset(table)
    _SPLIT_CACHE[key] = (task, dataset)
    return dataset


def _read_local(task: Task, split: str) -> pa.Table:
    if task.data_dir is None:
        raise DataFileError(
            f"task {task.name!r} has no local data folder; use source='hub' or build it with task_from_files"
        )
    path = task.data_dir / f"{split}.parquet"
    if not path.is_file():
        available = sorted(p.stem for p in task.data_dir.glob("*.parquet")) if task.data_dir.is_dir() else []
        raise DataFileError(
            f"task {task.name!r} has no split {split!r}: {path} does not exist (splits found: {available or 'none'})"
        )
    try:
        _refuse_repeated_columns(pq.read_schema(path).names, str(path))  # read_table fails on them, over many lines
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataFileError(f"{path} is not a readable parquet file ({reason}); rebuild it") from None
    return validated_table(table, task.num_classes, str(path))


def _read_hub(task: Task, split: str) -> pa.Table:
    if task.hub is None:
        raise DataFileError(f"task {task.name!r} has no hub source; use source='local'")
    if split not in task.hub.splits:
        raise DataFileError(f"task {task.name!r} has no hub split {split!r} (known: {sorted(task.hub.splits)})")
    where = f"{task.hub.path}" + (f"/{task.hub.name}" if task.hub.name else "") + f" split {task.hub.splits[split]!r}"
    try:
        hub_dataset = datasets.load_dataset(task.hub.path, task.hub.name, split=task.hub.splits[split])
        hub_dataset = hub_dataset.flatten_indices()
        table = hub_dataset.data.table.select([task.hub.text_column, task.hub.label_column])
    except Exception as error:  # network, auth, renamed repo, missing column: all mean "not from the hub"
        raise DataFileError(
            f"could not load task {task.name!r} from the Hugging Face hub ({where}): {type(error).__name__}: {error}. "
            f"source='local' works offline with the packaged copy"
        ) from None
    table = table.rename_columns(["text", "label"])
    return validated_table(table, task.num_classes, f"hub dataset {where}")


def validated_table(table: pa.Table, num_classes: int, where: str) -> pa.Table:
    """``table`` reduced to ``text`` (string) and ``label`` (int64), or `DataFileError` naming what is wrong."""
    missing = [column for column in ("text", "label") if column not in table.column_names]
    if missing:
        raise DataFileError(
            f"{where} lacks column(s) {missing} (has {table.column_names}); it needs 'text' and 'label'"
        )
    _refuse_repeated_columns(table.column_names, where)
    text, label = table.column("text"), table.column("label")
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise DataFileError(f"{where}: column 'text' has type {text.type}, expected strings")
    if not pa.types.is_integer(label.type):
        raise DataFileError(f"{where}: column 'label' has type {label.type}, expected integer class ids")
    if table.num_rows == 0:
        raise DataFileError(f"{where} has no rows")
    if text.null_count or label.null_count:
        raise DataFileError(f"{where} has empty (null) values in 'text' or 'label'; every row needs both")
    labels = label.to_pylist()  # Python ints, before any cast: a uint64 above 2**63 must not overflow
    outside = sorted({value for value in labels if not 0 <= value < num_classes})
    if outside:
        raise DataFileError(
            f"{where}: labels {outside[:10]} are outside 0..{num_classes - 1} for a {num_classes}-class task"
        )
    return pa.table({"text": text.cast(pa.string()), "label": label.cast(pa.int64())})


def _refuse_repeated_columns(names: Sequence[str], where: str) -> None:
    repeated = sorted({name for name in names if name in ("text", "label") and list(names).count(name) > 1})
    if repeated:
        raise DataFileError(
            f"{where} has column(s) {repeated} more than once (columns: {list(names)}); keep one of each, rename or "
            "remove the others"
        )


# ---------------------------------------------------------------- custom tasks

#: Written by `task_from_files` into its data folder: the sha256 of each split file it wrote there. A split file
#: in that folder is replaced only when this record says anchorlens wrote it and it is unchanged since.
TASK_RECORD = "anchorlens-task.json"


def task_from_files(
    name: str,
    template: str,
    label_words: Sequence[str],
    class_names: Sequence[str],
    train_path: str | Path,
    test_path: str | Path,
    *,
    data_dir: str | Path | None = None,
    max_test: int = 1000,
    register: bool = False,
    overwrite: bool = False,
) -> Task:
    """A task from your own files (``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``) with ``text`` and ``label`` columns.

    ``label`` holds class ids ``0..C-1`` or the class names. The files are checked and written as
    ``train.parquet``/``test.parquet`` (columns ``text`` and ``label`` only) to ``data_dir`` (a new temporary
    folder if not given), so the task then loads exactly like the built-in ones. A file already in
    ``data_dir`` is replaced only if ``task_from_files`` wrote it there (its record, ``anchorlens-task.json``,
    says so and the file is unchanged): your own files, inputs included, are never written over.
    ``register=True`` also makes it reachable by name.

    Args:
        name: the task's name.
        template: ``{text}`` then ``{label}``, last, e.g. ``"Review: {text}\\nSentiment:{label}"``.
        label_words: each class's label word in class-id order, with its leading space (``" Positive"``).
        class_names: each class's name in class-id order (what a ``label`` column of names holds).
        train_path: the demonstration split's file.
        test_path: the test split's file.
        data_dir: where the parquet files go (default a new temporary folder).
        max_test: the most test inputs a seed takes (the paper's 1000).
        register: also `register_task` it.
        overwrite: with `register`, replace a task of the same name.

    Returns:
        The `Task`, loading like the built-in ones (`load_split`, `task_prompts`, the experiments).

    Examples:
        >>> import pathlib, tempfile, anchorlens as al
        >>> data = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
        >>> _ = data.write_text("text,label\\ngreat fun,1\\ndull and slow,0\\n")
        >>> template = "Review: {text}\\nSentiment:{label}"
        >>> task = al.task_from_files("reviews", template, [" bad", " good"], ["bad", "good"], data, data)
        >>> list(al.load_split(task, "test")["label"])
        [1, 0]
    """
    task = Task(
        name=name,
        template=template,
        label_words=tuple(label_words),
        class_names=tuple(class_names),
        demo_split="train",
        test_split="test",
        data_dir=Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix=f"anchorlens-{name}-")),
        max_test=max_test,
    )
    assert task.data_dir is not None
    try:
        # Every input is read and checked before anything is written: a refused file leaves the folder as it was.
        tables = {
            split: validated_table(_read_user_file(Path(path), task.class_names), task.num_classes, str(path))
            for split, path in (("train", train_path), ("test", test_path))
        }
        for key in [key for key in _SPLIT_CACHE if key[3] == str(task.data_dir)]:
            del _SPLIT_CACHE[key]  # the files there are about to be replaced
        _write_task_files(task.data_dir, tables, sources=[Path(train_path), Path(test_path)])
    except Exception:
        if data_dir is None:  # a refused file leaves no temporary folder of ours behind
            shutil.rmtree(task.data_dir, ignore_errors=True)
        raise
    if register:
        register_task(task, overwrite=overwrite)
    return task


def _written_by_us(data_dir: Path) -> dict[str, str]:
    """{file name: sha256} of the split files `task_from_files` wrote in `data_dir` (empty if none)."""
    record_path = data_dir / TASK_RECORD
    if not record_path.exists() and not record_path.is_symlink():
        return {}
    try:
        record = json.loads(record_path.read_text(encoding="utf-8")) if not record_path.is_symlink() else None
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), dict):
        raise DataFileError(
            f"{record_path} is not a record written by task_from_files; anchorlens will not write over it: pass "
            "another data_dir (or leave data_dir out)"
        )
    return record["sha256"]


def _write_task_files(data_dir: Path, tables: Mapping[str, pa.Table], sources: Sequence[Path]) -> None:
    """Write each split as ``<split>.parquet`` in `data_dir`, refusing, before writing anything, to replace a file
    that anchorlens did not write there (a user's own data, perhaps the very input) or that changed since."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataFileError(f"data_dir {data_dir} is a file; pass a folder (or leave data_dir out)")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataFileError(
            f"cannot create data_dir {data_dir} ({os.strerror(error.errno or 0).lower()}); "
            "choose a writable folder (or leave data_dir out)"
        ) from None
    ours = _written_by_us(data_dir)
    for split in tables:
        target = data_dir / f"{split}.parquet"
        if not target.exists() and not target.is_symlink():
            continue
        if target.is_symlink() or not target.is_file() or ours.get(target.name) != file_sha256(target):
            is_input = any(
                source.exists() and os.path.samefile(source, target) for source in sources if target.exists()
            )
            what = "it is one of your input files" if is_input else "anchorlens did not write it (or it changed since)"
            raise DataFileError(
                f"{target} already exists and {what}; task_from_files never writes over a file it did not make: "
                "pass a data_dir that holds no train.parquet or test.parquet (or leave data_dir out for a new "
                "temporary folder)"
            )
    written = dict(ours)
    for split, table in tables.items():
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        target = data_dir / f"{split}.parquet"
        _replace_file(target, buffer.getvalue())
        written[target.name] = bytes_sha256(buffer.getvalue())
        # Recorded after each file, so a failure between the two splits still leaves every file of ours known.
        record = {"written_by": "anchorlens.task_from_files", "sha256": written}
        _replace_file(data_dir / TASK_RECORD, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"))


def _replace_file(target: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `target`, then rename it over `target` (a link is replaced)."""
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
        temporary = None
    except OSError as error:
        raise DataFileError(
            f"cannot write {target} ({os.strerror(error.errno or 0).lower()}); choose a writable "
            "data_dir (or leave data_dir out)"
        ) from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def _read_user_file(path: Path, class_names: Sequence[str]) -> pa.Table:
    """Read a user file into a ``text``/``label`` table, mapping class names to ids.

    Anything that would be read other than as written is refused, naming the line: a row with more or fewer
    fields than the header (in a TSV, a text holding a tab), a header naming a column twice, a JSON object
    with a key twice, a label that is neither a class name nor a plain ASCII class id. Columns besides
    ``text`` and ``label`` are allowed; the task's splits hold only those two (your file is left as it is).
    """
    if path.is_dir():
        raise DataFileError(f"{path} is a folder, not a data file; pass the .csv, .tsv, .jsonl or .parquet file itself")
    if not path.is_file():
        raise DataFileError(f"{path} does not exist" if not path.exists() else f"{path} is not a regular file")
    suffix = path.suffix.lower()
    records: list[dict] | None = None
    columns: list[str] = []
    try:
        if suffix == ".parquet":
            _refuse_repeated_columns(pq.read_schema(path).names, str(path))
            table = pq.read_table(path)
        elif suffix in (".csv", ".tsv"):
            columns, records = _read_delimited(path, tab=suffix == ".tsv")
        elif suffix == ".jsonl":
            records = []
            with path.open(encoding="utf-8-sig") as handle:
                for line_number, line in enumerate(handle, start=1):
                    if line.strip():
                        records.append(_json_object(line, path, line_number))
            columns = sorted({key for record in records for key in record})
        else:
            raise DataFileError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl or .parquet")
    except (UnicodeDecodeError, csv.Error, pa.ArrowException, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise DataFileError(f"{path} cannot be read ({type(error).__name__}: {reason})") from None
    num_classes = len(class_names)
    if records is not None:
        missing = [column for column in ("text", "label") if column not in columns]
        if missing:
            raise DataFileError(f"{path} lacks column(s) {missing} (has {list(columns)}); it needs 'text' and 'label'")
        texts = [record.get("text") for record in records]
        labels = [_label_id(record.get("label"), class_names, path, row) for row, record in enumerate(records)]
        if any(not isinstance(text, str) for text in texts):
            raise DataFileError(f"{path}: every 'text' value must be a string")
        _refuse_outside(labels, num_classes, path)
        return pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.int64())})
    if "label" in table.column_names and pa.types.is_string(table.column("label").type):
        labels = [
            _label_id(value, class_names, path, row) for row, value in enumerate(table.column("label").to_pylist())
        ]
        _refuse_outside(labels, num_classes, path)
        table = table.set_column(table.column_names.index("label"), "label", pa.array(labels, pa.int64()))
    return table


def _read_delimited(path: Path, *, tab: bool) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of a CSV (quoted fields allowed) or TSV (no quoting: sentences keep their quotes)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if tab else csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataFileError(f"{path} is empty; it needs a header line naming the 'text' and 'label' columns")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise DataFileError(
                f"{path}: the header names column(s) {repeated} more than once; keep one of each, rename or remove "
                "the others"
            )
        rows = []
        for fields in reader:
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                if tab and len(fields) > len(header):
                    fix = (
                        "a text holding a tab splits into several fields in a TSV, which has no quoting; write the "
                        "file as .csv (quoted) or .jsonl, or replace the tabs"
                    )
                elif len(fields) > len(header):
                    fix = 'quote a text that holds a comma ("like, this"), or name the extra column in the header'
                else:
                    fix = "every line needs a value for each column of the header"
                raise DataFileError(
                    f"{path}, line {reader.line_num}: {len(fields)} field{'s' if len(fields) != 1 else ''} but the "
                    f"header has {len(header)} "
                    f"({', '.join(header)}); {fix}"
                )
            rows.append(dict(zip(header, fields)))
    return header, rows


def _json_object(line: str, path: Path, line_number: int) -> dict:
    def no_repeats(pairs: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in pairs]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise DataFileError(
                f"{path}, line {line_number}: key(s) {repeated} appear more than once in one object; keep one of each"
            )
        return dict(pairs)

    try:
        record = json.loads(line, object_pairs_hook=no_repeats)
    except json.JSONDecodeError as error:
        raise DataFileError(
            f"{path}, line {line_number} is not valid JSON ({error.msg} at column {error.colno})"
        ) from None
    if not isinstance(record, dict):
        raise DataFileError(
            f'{path}, line {line_number}: every line must be a JSON object like {{"text": ..., "label": ...}}'
        )
    return record


def _refuse_outside(labels: Sequence[int], num_classes: int, path: Path) -> None:
    """Class ids outside the task's range, refused before they reach a 64-bit column (10**23 would overflow)."""
    outside = sorted({value for value in labels if not 0 <= value < num_classes})
    if outside:
        raise DataFileError(
            f"{path}: labels {outside[:10]} are outside 0..{num_classes - 1} for a {num_classes}-class task"
        )


#: A class id written as text: ASCII digits only (str.isdigit would take '²', which int() then refuses).
_CLASS_ID = re.compile(r"\s*-?[0-9]+\s*")


def _label_id(value: object, class_names: Sequence[str], path: Path, row: int) -> int:
    """A label given as an id (int or digit string) or as a class name, as an int id."""
    if isinstance(value, bool):
        raise DataFileError(f"{path}, row {row}: label {value!r} is not a class id or class name")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value in class_names:
            return list(class_names).index(value)
        if _CLASS_ID.fullmatch(value):
            return int(value)
    raise DataFileError(
        f"{path}, row {row}: label {value!r} is neither a class id nor one of the class names {list(class_names)}"
    )
