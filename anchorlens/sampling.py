"""Seed-faithful sampling of demonstrations and test inputs, as the paper's reference code draws them.

The paper's numbers depend on which rows a seed picks, so the random streams are reproduced exactly:

* demonstrations: the train row indices are shuffled with numpy's legacy Mersenne-Twister shuffle
  (``RandomState(seed).shuffle``, what ``np.random.seed(seed); np.random.shuffle(...)`` does) and walked
  in that order; the first ``shots_per_class`` rows met of each class become the demonstrations, in the
  order met (so classes interleave), the next ``extra_per_class`` of each class the disjoint "extra" set
  that anchor re-weighting trains on;
* test inputs: ``default_rng(seed).permutation(n)[:n_test]``, which is exactly what Hugging Face
  ``Dataset.shuffle(seed=seed).select(range(n_test))`` picks.

Private generators are used (`anchorlens.random_streams`, which owns every seeded stream), so the global numpy
state is never touched and sampling is pure.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from anchorlens.errors import EmptyClassError, InvalidConfigError
from anchorlens.random_streams import shuffled_demonstration_rows, shuffled_test_rows
from anchorlens.tasks import Source, Task, get_task, load_split

if TYPE_CHECKING:
    import datasets


class TestSetCapWarning(UserWarning):
    """More test inputs were asked for than the test split has; all of its rows are used."""


TestSetCapWarning.__test__ = False  # type: ignore[attr-defined]  # not a pytest test class despite its name


@dataclass(frozen=True)
class Example:
    """One row of a split: its text, class id, and row index in that split (to trace it back)."""

    text: str
    label: int
    index: int


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise InvalidConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def demonstration_indices(
    labels: Sequence[int],
    num_classes: int,
    seed: int,
    shots_per_class: int = 1,
    extra_per_class: int = 0,
    *,
    class_names: Sequence[str] | None = None,
) -> tuple[list[int], list[int]]:
    """Row indices of the demonstrations (prompt order) and of the disjoint extra set, for ``labels``.

    Rows with a negative label (unlabelled) are skipped. `EmptyClassError` if a class has too few rows;
    ``class_names`` only makes that message readable.
    """
    seed = _check_seed(seed)
    num_classes = _check_count("num_classes", num_classes, 1)
    shots_per_class = _check_count("shots_per_class", shots_per_class, 1)
    extra_per_class = _check_count("extra_per_class", extra_per_class, 0)
    indices = shuffled_demonstration_rows(seed, len(labels))

    demonstrations: list[int] = []
    extras: list[int] = []
    demo_count = [0] * num_classes
    extra_count = [0] * num_classes
    wanted = num_classes * (shots_per_class + extra_per_class)
    for index in indices:
        if len(demonstrations) + len(extras) == wanted:
            break
        label = int(labels[index])
        if label < 0:
            continue
        if label >= num_classes:
            raise InvalidConfigError(f"row {index} has label {label}, outside 0..{num_classes - 1}")
        if demo_count[label] < shots_per_class:
            demo_count[label] += 1
            demonstrations.append(index)
        elif extra_count[label] < extra_per_class:
            extra_count[label] += 1
            extras.append(index)

    for label in range(num_classes):
        if demo_count[label] < shots_per_class or extra_count[label] < extra_per_class:
            name = f"{class_names[label]!r} (id {label})" if class_names else f"id {label}"
            available = demo_count[label] + extra_count[label]
            raise EmptyClassError(
                f"class {name} has {available} labelled row(s), but {shots_per_class} demonstration(s) + "
                f"{extra_per_class} extra per class are needed; lower shots_per_class/extra_per_class or add rows"
            )
    return demonstrations, extras


def test_indices(n_rows: int, seed: int, n_test: int | None = None) -> list[int]:
    """The first ``n_test`` rows of the seeded shuffle of ``range(n_rows)`` (all rows if ``None``).

    Equals ``Dataset.shuffle(seed=seed).select(range(n_test))``. Asking for more rows than exist gives
    all of them, like the paper's "1000 test examples" on the 500-row TREC test set.
    """
    seed = _check_seed(seed)
    n_rows = _check_count("n_rows", n_rows, 1)
    n_test = n_rows if n_test is None else _check_count("n_test", n_test, 1)
    return [int(i) for i in shuffled_test_rows(seed, n_rows)[: min(n_test, n_rows)]]


test_indices.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def _examples(dataset: datasets.Dataset, indices: Sequence[int]) -> list[Example]:
    """Rows read straight from the Arrow table (no per-row formatting through `datasets`)."""
    texts = dataset.data.column("text")
    labels = dataset.data.column("label")
    return [Example(texts[i].as_py(), int(labels[i].as_py()), int(i)) for i in indices]


def sample_demonstrations(
    task: str | Task,
    seed: int,
    shots_per_class: int = 1,
    extra_per_class: int = 0,
    source: Source = "local",
) -> tuple[list[Example], list[Example]]:
    """The seed's demonstrations (prompt order) and extra examples, drawn from the task's demo split.

    Args:
        task: a task name or `Task`.
        seed: the seed (the paper's are `anchorlens.paper.SEEDS`).
        shots_per_class: demonstrations per class.
        extra_per_class: further examples per class, disjoint from the demonstrations (re-weighting trains on
            them).
        source: ``"local"`` or ``"hub"`` (`load_split`).

    Returns:
        ``(demonstrations, extras)``: `Example`s in the order the seeded walk meets them (classes interleaved);
        ``index`` is the row of the demonstration split.

    Examples:
        >>> import anchorlens as al
        >>> demonstrations, extra = al.sample_demonstrations("sst2", seed=42)
        >>> [example.label for example in demonstrations], extra
        ([0, 1], [])
    """
    task = get_task(task)
    dataset = load_split(task, task.demo_split, source=source)
    demonstrations, extras = demonstration_indices(
        dataset.data.column("label").to_pylist(),
        task.num_classes,
        seed,
        shots_per_class,
        extra_per_class,
        class_names=task.class_names,
    )
    return _examples(dataset, demonstrations), _examples(dataset, extras)


def sample_test_set(
    task: str | Task,
    seed: int,
    n_test: int | None = None,
    source: Source = "local",
) -> list[Example]:
    """The seed's test inputs: ``n_test`` (default ``min(task.max_test, rows)``) rows of the shuffled test split.

    Asking for more than the split has gives all its rows, with a `TestSetCapWarning` saying how many: a
    result made with ``n_test=1000`` on TREC's 500 test rows averages 500 inputs, not 1000.

    Args:
        task: a task name or `Task`.
        seed: the seed (the paper's are `anchorlens.paper.SEEDS`).
        n_test: how many (default the task's ``max_test``, at most the split's rows).
        source: ``"local"`` or ``"hub"`` (`load_split`).

    Returns:
        `Example`s in the seed's shuffled order; ``index`` is the row of the test split.

    Examples:
        >>> import anchorlens as al
        >>> [example.text[:20] for example in al.sample_test_set("sst2", seed=42, n_test=2)]
        ['it gets onto the scr', 'my big fat greek wed']
    """
    task = get_task(task)
    dataset = load_split(task, task.test_split, source=source)
    if n_test is None:
        n_test = min(task.max_test, dataset.num_rows)
    n_test = _check_count("n_test", n_test, 1)
    if n_test > dataset.num_rows:
        warnings.warn(
            f"task {task.name!r}: n_test={n_test} asks for more test inputs than its {task.test_split!r} split has; "
            f"all {dataset.num_rows} are used",
            TestSetCapWarning,
            stacklevel=2,
        )
    return _examples(dataset, test_indices(dataset.num_rows, seed, n_test))
