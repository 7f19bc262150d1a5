"""Seed-faithful sampling: the reference code's demonstrations and test subsets (no model needed)."""

from __future__ import annotations

import collections
import warnings

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anchorlens.errors import EmptyClassError, InvalidConfigError
from anchorlens.sampling import (
    Example,
    TestSetCapWarning,
    demonstration_indices,
    sample_demonstrations,
    sample_test_set,
    test_indices,
)
from anchorlens.tasks import Task, get_task, load_split

# ---------------------------------------------------------------- the reference code's draws, seed 42


def test_sst2_seed42_demonstrations():
    demonstrations, extras = sample_demonstrations("sst2", 42)
    assert [d.index for d in demonstrations] == [66730, 29890]
    assert [d.label for d in demonstrations] == [0, 1]
    assert demonstrations[1] == Example("enigma is well-made ", 1, 29890)
    assert extras == []


def test_trec_seed42_demonstrations():
    demonstrations, _ = sample_demonstrations("trec", 42)
    assert [d.index for d in demonstrations] == [3408, 371, 453, 4457, 5315, 168]
    assert [d.label for d in demonstrations] == [4, 1, 2, 3, 0, 5]  # classes interleaved, order of appearance


def test_seed42_test_subsets():
    assert [e.index for e in sample_test_set("sst2", 42)[:3]] == [726, 737, 51]
    trec = sample_test_set("trec", 42)
    assert [e.index for e in trec[:3]] == [473, 132, 472]
    assert trec[0] == Example("What is the population of Venezuela ?", 5, 473)


def test_examples_carry_their_rows():
    train = load_split("trec", "train")
    demonstrations, extras = sample_demonstrations("trec", 7, extra_per_class=2)
    for example in demonstrations + extras:
        assert train[example.index] == {"text": example.text, "label": example.label}


# ---------------------------------------------------------------- the algorithm


def reference_walk(labels, num_classes, seed, shots, extra):
    """The reference procedure written out plainly, with the global numpy RNG as the paper's code uses it."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        order = list(range(len(labels)))
        np.random.shuffle(order)
    finally:
        np.random.set_state(state)
    demos, extras = [], []
    for index in order:
        label = labels[index]
        if sum(labels[i] == label for i in demos) < shots:
            demos.append(index)
        elif sum(labels[i] == label for i in extras) < extra:
            extras.append(index)
    return demos, extras


@pytest.mark.parametrize("seed", [42, 43, 44, 45, 46])
def test_matches_global_rng_reference(seed):
    labels = load_split("trec", "train")["label"][:]
    assert demonstration_indices(labels, 6, seed, 1, 4) == reference_walk(labels, 6, seed, 1, 4)


def test_global_numpy_state_is_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    sample_demonstrations("sst2", 42, extra_per_class=4)
    sample_test_set("sst2", 42)
    assert np.array_equal(np.random.get_state()[1], before)


def test_deterministic_and_seed_dependent():
    first = sample_demonstrations("emoc", 44, shots_per_class=2, extra_per_class=4)
    assert sample_demonstrations("emoc", 44, shots_per_class=2, extra_per_class=4) == first
    assert sample_demonstrations("emoc", 45, shots_per_class=2, extra_per_class=4) != first
    assert sample_test_set("emoc", 44) == sample_test_set("emoc", 44)
    assert sample_test_set("emoc", 44) != sample_test_set("emoc", 45)


@pytest.mark.parametrize("name", ["sst2", "agnews", "trec", "emoc"])
def test_extra_set_is_disjoint_and_balanced(name):
    task = get_task(name)
    demonstrations, extras = sample_demonstrations(name, 43, shots_per_class=1, extra_per_class=4)
    assert collections.Counter(d.label for d in demonstrations) == {c: 1 for c in range(task.num_classes)}
    assert collections.Counter(e.label for e in extras) == {c: 4 for c in range(task.num_classes)}
    assert not {d.index for d in demonstrations} & {e.index for e in extras}
    assert len({e.index for e in extras}) == len(extras)


def test_more_shots_per_class_extend_the_same_walk():
    one, _ = sample_demonstrations("sst2", 42, shots_per_class=1)
    two, _ = sample_demonstrations("sst2", 42, shots_per_class=2)
    assert collections.Counter(d.label for d in two) == {0: 2, 1: 2}
    assert [d.index for d in one] == [d.index for d in two if d.index in {e.index for e in one}]
    # 1-shot demos + 4 extra per class are exactly the rows a 5-shot prompt uses (the paper's 5-shot baseline)
    demos, extras = sample_demonstrations("sst2", 42, shots_per_class=1, extra_per_class=4)
    five, _ = sample_demonstrations("sst2", 42, shots_per_class=5)
    assert {d.index for d in demos + extras} == {d.index for d in five}


def test_unlabelled_rows_are_skipped():
    labels = [-1, -1, 0, 1, -1, 0, 1]
    demos, extras = demonstration_indices(labels, 2, 0, 1, 1)
    assert sorted(demos + extras) == [2, 3, 5, 6]


def test_empty_class_is_an_error_naming_the_class():
    with pytest.raises(EmptyClassError, match=r"class id 1 has 1 labelled row\(s\), but 2 demonstration"):
        demonstration_indices([0, 0, 0, 1], 2, 42, shots_per_class=2)
    with pytest.raises(EmptyClassError, match=r"class 'ABBR' \(id 0\) has 86 labelled row\(s\), but 50 .* 40 extra"):
        sample_demonstrations("trec", 42, shots_per_class=50, extra_per_class=40)
    with pytest.raises(EmptyClassError, match="id 2 has 0"):
        demonstration_indices([0, 1, 0, 1], 3, 42)


def test_empty_class_in_a_data_file(tmp_path):
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [0, 0, 2]}), tmp_path / "train.parquet")
    task = Task("tri", "{text}:{label}", (" a", " b", " c"), ("A", "B", "C"), data_dir=tmp_path)
    with pytest.raises(EmptyClassError, match=r"class 'B' \(id 1\) has 0"):
        sample_demonstrations(task, 42)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        (dict(shots_per_class=0), "shots_per_class"),
        (dict(extra_per_class=-1), "extra_per_class"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
    ],
)
@pytest.mark.bad_input  # seed=1.5
def test_bad_sampling_settings(kwargs, problem):
    arguments = dict(labels=[0, 1], num_classes=2, seed=42)
    arguments.update(kwargs)
    with pytest.raises(InvalidConfigError, match=problem):
        demonstration_indices(**arguments)


def test_out_of_range_label_is_refused():
    with pytest.raises(InvalidConfigError, match="label 5"):
        demonstration_indices([0, 1, 5], 2, 42, extra_per_class=5)


# ---------------------------------------------------------------- test subsets


def test_test_indices_equal_hf_shuffle_select():
    dataset = datasets.Dataset.from_dict({"row": list(range(300))})
    for seed in (42, 46):
        expected = dataset.shuffle(seed=seed).select(range(100))["row"][:]
        assert test_indices(300, seed, 100) == expected


def test_default_test_size_is_min_of_max_test_and_rows():
    assert len(sample_test_set("sst2", 42)) == 872
    assert len(sample_test_set("trec", 42)) == 500
    agnews = sample_test_set("agnews", 42)
    assert len(agnews) == 1000 and len({e.index for e in agnews}) == 1000
    assert [e.index for e in sample_test_set("trec", 42, n_test=10)] == test_indices(500, 42, 10)
    with pytest.warns(TestSetCapWarning):
        assert len(sample_test_set("trec", 42, n_test=5000)) == 500  # "1000 examples" on a 500-row split


def test_asking_for_more_test_inputs_than_exist_says_how_many_are_used():
    """Issue 17.6: --n-test 1000000000 was capped without a word (and recorded as asked)."""
    with pytest.warns(
        TestSetCapWarning,
        match=r"task 'trec': n_test=1000000000 asks for more test inputs than its "
        r"'test' split has; all 500 are used",
    ):
        capped = sample_test_set("trec", 42, n_test=1_000_000_000)
    assert [e.index for e in capped] == test_indices(500, 42)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what fits, and the default, say nothing
        sample_test_set("trec", 42, n_test=500)
        sample_test_set("sst2", 42)


def test_test_subset_is_a_prefix_of_the_shuffle():
    assert test_indices(872, 42, 5) == test_indices(872, 42)[:5]


@pytest.mark.parametrize("n_test", [0, -3])
def test_non_positive_test_size_is_refused(n_test):
    with pytest.raises(InvalidConfigError, match="n_test") as caught:
        sample_test_set("trec", 42, n_test=n_test)
    assert isinstance(caught.value, ValueError)
