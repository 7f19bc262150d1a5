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
import json
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


@dataclass(frozen=True)
class Task:
    """One classification task: how an example is written into the prompt and where its data is.

    ``template`` holds ``{text}`` then ``{label}``, with ``{label}`` last: a demonstration fills it with
    the class's label word, the query with ``""``, so the query ends right where the model must answer.
    Label words carry their own leading space (``" Positive"``), hence no space before ``{label}``.
    """

    name: str
    template: str
    label_words: tuple[str, ...]
    class_names: tuple[str, ...]
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
            raise TaskDefinitionError(f"task {self.name!r}: template {self.template!r} is malformed ({error}); {fix}") from None
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
                f"task {self.name!r}: template {self.template!r} puts {{label}} before {{text}}; the text must come first"
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
                f"task {self.name!r}: {len(self.label_words)} label word(s) given; a classification task needs at least 2"
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
    """Add ``task`` under its name; a name already taken is refused unless ``overwrite``."""
    if not isinstance(task, Task):
        raise TaskDefinitionError(f"register_task expects a Task, got {type(task).__name__}")
    if task.name in _REGISTRY and not overwrite:
        raise TaskDefinitionError(
            f"a task named {task.name!r} is already registered; pick another name or pass overwrite=True"
        )
    _REGISTRY[task.name] = task
    return task


def get_task(name_or_task: str | Task) -> Task:
    """The registered task of that name (a `Task` passes through unchanged)."""
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
    """Names of the registered tasks, in registration order (the four paper tasks first)."""
    return list(_REGISTRY)


register_task(Task(
    name="sst2",
    template="Review: {text}\nSentiment:{label}",
    label_words=(" Negative", " Positive"),
    class_names=("negative", "positive"),
    demo_split="train",
    test_split="validation",  # the paper's test set is GLUE validation (872 rows)
    data_dir=PACKAGE_DATA / "sst2",
    hub=HubSource("nyu-mll/glue", "sst2", {"train": "train", "validation": "validation"}, "sentence", "label"),
))
register_task(Task(
    name="agnews",
    template="Article: {text}\nAnswer:{label}",
    label_words=(" World", " Sports", " Business", " Technology"),
    class_names=("World", "Sports", "Business", "Sci/Tech"),
    demo_split="train",  # locally a 638-row pool of the train split, see data/agnews/PROVENANCE.md
    test_split="test",
    data_dir=PACKAGE_DATA / "agnews",
    hub=HubSource("fancyzhx/ag_news", None, {"train": "train", "test": "test"}, "text", "label"),
))
register_task(Task(
    name="trec",
    template="Question: {text}\nAnswer Type:{label}",
    label_words=(" Abbreviation", " Entity", " Description", " Person", " Location", " Number"),
    class_names=("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"),
    demo_split="train",
    test_split="test",
    data_dir=PACKAGE_DATA / "trec",
    hub=HubSource("CogComp/trec", None, {"train": "train", "test": "test"}, "text", "coarse_label"),
))
register_task(Task(
    name="emoc",
    template="Dialogue: {text}\nEmotion:{label}",
    label_words=(" Others", " Happy", " Sad", " Angry"),
    class_names=("others", "happy", "sad", "angry"),
    demo_split="train",
    test_split="test",
    data_dir=PACKAGE_DATA / "emoc",
    hub=HubSource("SemEvalWorkshop/emo", None, {"train": "train", "test": "test"}, "text", "label"),
))


# ---------------------------------------------------------------- loading

# (task name, split, source, data folder) -> (the task it was validated for, the split)
_SPLIT_CACHE: dict[tuple[str, str, str, str | None], tuple[Task, datasets.Dataset]] = {}


def load_split(task: str | Task, split: str, *, source: Source = "local") -> datasets.Dataset:
    """One split of a task as a ``datasets.Dataset`` with columns ``text`` and ``label`` only.

    ``source="local"`` reads the task's parquet file (offline, no Hugging Face cache writes);
    ``source="hub"`` calls ``datasets.load_dataset``. Loading is pure, so results are cached per
    (task, split, source, data folder).
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
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DataFileError(f"{path} is not a readable parquet file ({error}); rebuild it") from None
    return validated_table(table, task.num_classes, str(path))


def _read_hub(task: Task, split: str) -> pa.Table:
    if task.hub is None:
        raise DataFileError(f"task {task.name!r} has no hub source; use source='local'")
    if split not in task.hub.splits:
        raise DataFileError(
            f"task {task.name!r} has no hub split {split!r} (known: {sorted(task.hub.splits)})"
        )
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
    text, label = table.column("text"), table.column("label")
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise DataFileError(f"{where}: column 'text' has type {text.type}, expected strings")
    if not pa.types.is_integer(label.type):
        raise DataFileError(f"{where}: column 'label' has type {label.type}, expected integer class ids")
    if table.num_rows == 0:
        raise DataFileError(f"{where} has no rows")
    if text.null_count or label.null_count:
        raise DataFileError(f"{where} has empty (null) values in 'text' or 'label'; every row needs both")
    labels = label.cast(pa.int64()).to_pylist()
    outside = sorted({value for value in labels if not 0 <= value < num_classes})
    if outside:
        raise DataFileError(
            f"{where}: labels {outside[:10]} are outside 0..{num_classes - 1} for a {num_classes}-class task"
        )
    return pa.table({"text": text.cast(pa.string()), "label": label.cast(pa.int64())})


# ---------------------------------------------------------------- custom tasks


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
    ``train.parquet``/``test.parquet`` to ``data_dir`` (a new temporary folder if not given), so the task
    then loads exactly like the built-in ones. ``register=True`` also makes it reachable by name.
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
    task.data_dir.mkdir(parents=True, exist_ok=True)
    for key in [key for key in _SPLIT_CACHE if key[3] == str(task.data_dir)]:
        del _SPLIT_CACHE[key]  # the files there are about to be replaced
    try:
        for split, path in (("train", Path(train_path)), ("test", Path(test_path))):
            table = _read_user_file(path, task.class_names)
            pq.write_table(validated_table(table, task.num_classes, str(path)), task.data_dir / f"{split}.parquet",
                           compression="zstd")
    except Exception:
        if data_dir is None:  # a refused file leaves no temporary folder of ours behind
            shutil.rmtree(task.data_dir, ignore_errors=True)
        raise
    if register:
        register_task(task, overwrite=overwrite)
    return task


def _read_user_file(path: Path, class_names: Sequence[str]) -> pa.Table:
    """Read a user file into a ``text``/``label`` table, mapping class names to ids."""
    if not path.is_file():
        raise DataFileError(f"{path} does not exist")
    suffix = path.suffix.lower()
    records: list[dict] | None = None
    columns: list[str] = []
    try:
        if suffix == ".parquet":
            table = pq.read_table(path)
        elif suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8") as handle:
                # TSV: no quote handling, sentences may contain quotes (as in SST-2)
                reader = (csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if suffix == ".tsv"
                          else csv.DictReader(handle))
                records = list(reader)
                columns = list(reader.fieldnames or [])
        elif suffix == ".jsonl":
            with path.open(encoding="utf-8") as handle:
                records = [json.loads(line) for line in handle if line.strip()]
            if any(not isinstance(record, dict) for record in records):
                raise DataFileError(f"{path}: every line must be a JSON object like {{\"text\": ..., \"label\": ...}}")
            columns = sorted({key for record in records for key in record})
        else:
            raise DataFileError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl or .parquet")
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error, pa.ArrowException, OSError) as error:
        raise DataFileError(f"{path} cannot be read ({type(error).__name__}: {error})") from None
    if records is not None:
        missing = [column for column in ("text", "label") if column not in columns]
        if missing:
            raise DataFileError(f"{path} lacks column(s) {missing} (has {list(columns)}); it needs 'text' and 'label'")
        texts = [record.get("text") for record in records]
        labels = [_label_id(record.get("label"), class_names, path, row) for row, record in enumerate(records)]
        if any(not isinstance(text, str) for text in texts):
            raise DataFileError(f"{path}: every 'text' value must be a string")
        return pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.int64())})
    if "label" in table.column_names and pa.types.is_string(table.column("label").type):
        labels = [_label_id(value, class_names, path, row) for row, value in enumerate(table.column("label").to_pylist())]
        table = table.set_column(table.column_names.index("label"), "label", pa.array(labels, pa.int64()))
    return table


def _label_id(value: object, class_names: Sequence[str], path: Path, row: int) -> int:
    """A label given as an id (int or digit string) or as a class name, as an int id."""
    if isinstance(value, bool):
        raise DataFileError(f"{path}, row {row}: label {value!r} is not a class id or class name")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value in class_names:
            return list(class_names).index(value)
        if value.strip().lstrip("-").isdigit():
            return int(value)
    raise DataFileError(
        f"{path}, row {row}: label {value!r} is neither a class id nor one of the class names {list(class_names)}"
    )
