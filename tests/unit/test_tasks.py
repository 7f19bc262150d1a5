"""The task registry, template validation, the packaged data and custom tasks (no model needed)."""

from __future__ import annotations

import csv
import json
import tempfile
import warnings

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anchorlens import tasks
from anchorlens.errors import DataFileError, InvalidConfigError, TaskDefinitionError, UnknownTaskError
from anchorlens.tasks import Task, get_task, list_tasks, load_split, register_task, task_from_files


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so tests that register tasks leave the real one untouched."""
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
    return tasks._REGISTRY


def make_task(**overrides) -> Task:
    fields = dict(
        name="toy",
        template="Review: {text}\nSentiment:{label}",
        label_words=(" Negative", " Positive"),
        class_names=("negative", "positive"),
    )
    fields.update(overrides)
    return Task(**fields)


def write_split(folder, split, table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{split}.parquet")


# ---------------------------------------------------------------- built-in tasks (SPEC §0)


def test_builtin_tasks_match_spec():
    assert list_tasks()[:4] == ["sst2", "agnews", "trec", "emoc"]
    expected = {
        "sst2": ("Review: {text}\nSentiment:{label}", (" Negative", " Positive"), "validation"),
        "agnews": ("Article: {text}\nAnswer:{label}", (" World", " Sports", " Business", " Technology"), "test"),
        "trec": (
            "Question: {text}\nAnswer Type:{label}",
            (" Abbreviation", " Entity", " Description", " Person", " Location", " Number"),
            "test",
        ),
        "emoc": ("Dialogue: {text}\nEmotion:{label}", (" Others", " Happy", " Sad", " Angry"), "test"),
    }
    for name, (template, words, test_split) in expected.items():
        task = get_task(name)
        assert (task.template, task.label_words, task.test_split, task.demo_split) == (
            template,
            words,
            test_split,
            "train",
        )
        assert task.num_classes == len(words)
        assert task.max_test == 1000


def test_trec_class_order_is_abbr_enty_desc_hum_loc_num():
    task = get_task("trec")
    assert task.class_names == ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")
    assert task.hub is not None and task.hub.label_column == "coarse_label"
    train = load_split("trec", "train")
    # first line of train_5500.label: "DESC:manner How did serfdom develop in and then leave Russia ?"
    assert train[0] == {"text": "How did serfdom develop in and then leave Russia ?", "label": 2}
    counts = [train["label"][:].count(c) for c in range(6)]
    assert counts == [86, 1250, 1162, 1223, 835, 896]


@pytest.mark.parametrize(
    ("name", "split", "rows"),
    [
        ("sst2", "train", 67349),
        ("sst2", "validation", 872),
        ("trec", "train", 5452),
        ("trec", "test", 500),
        ("agnews", "train", 638),
        ("agnews", "test", 7600),
        ("emoc", "train", 30160),
        ("emoc", "test", 5509),
        ("emoc", "dev", 2755),
    ],
)
def test_split_sizes_and_columns(name, split, rows):
    dataset = load_split(name, split)
    assert isinstance(dataset, datasets.Dataset)
    assert dataset.num_rows == rows
    assert dataset.column_names == ["text", "label"]
    assert dataset.features["text"].dtype == "string" and dataset.features["label"].dtype == "int64"


@pytest.mark.parametrize("name", ["sst2", "agnews", "trec", "emoc"])
def test_packaged_parquet_schema_is_exactly_text_and_label(name):
    for path in sorted(get_task(name).data_dir.glob("*.parquet")):
        schema = pq.read_schema(path)
        assert schema.names == ["text", "label"], path
        assert schema.field("text").type == pa.string() and schema.field("label").type == pa.int64(), path
    assert (get_task(name).data_dir / "PROVENANCE.md").is_file()


def test_sst2_text_is_the_hf_form():
    validation = load_split("sst2", "validation")["text"][:]
    assert all(text.endswith(" ") and not text.endswith("  ") for text in validation)
    assert validation[0] == "it 's a charming and often affecting journey . "
    train = load_split("sst2", "train")["text"][:]
    assert train[0] == "hide new secretions from the parental units "
    assert all(text.endswith(" ") for text in train)
    assert train[48104] == "10,000 "  # stored as "10000" in the raw file; GLUE/HF have "10,000"
    assert not any("10000" in text for text in train)


def test_trec_replacement_character_becomes_space():
    train = load_split("trec", "train")["text"][:]
    assert "\ufffd" not in "".join(train)
    assert train[65] == "Which city has the oldest relationship as a sister city with Los Angeles ?"


def test_agnews_and_emoc_rows():
    test = load_split("agnews", "test")
    assert test[0] == {
        "text": "Fears for T N pension after talks Unions representing workers at Turner   Newall say they are "
        "'disappointed' after talks with stricken parent firm Federal Mogul.",
        "label": 2,
    }
    pool = load_split("agnews", "train")["text"][:]
    assert len(set(pool)) == len(pool) == 638
    assert not set(pool) & set(test["text"][:])
    emoc = load_split("emoc", "train")
    assert emoc[0] == {"text": "don't worry  i'm girl hmm how do i know if you are what's ur name?", "label": 0}
    assert emoc[1]["label"] == 3  # "angry"
    assert all(text == text.lower() for text in emoc["text"][:1000])


def test_load_split_is_cached():
    assert load_split("trec", "test") is load_split("trec", "test")


def test_unknown_split_names_the_file_and_the_splits():
    with pytest.raises(DataFileError, match=r"no split 'dev'.*test\.parquet|no split 'dev'.*'test', 'train'"):
        load_split("trec", "dev")


@pytest.mark.bad_input  # a source outside Source
def test_invalid_source_is_refused():
    with pytest.raises(InvalidConfigError, match="'local' or 'hub'"):
        load_split("trec", "test", source="web")


# ---------------------------------------------------------------- formatting


def test_formatting_reproduces_the_spec_prompt():
    task = get_task("sst2")
    assert task.template_parts() == ("Review: ", "\nSentiment:", "")
    prompt = "\n".join(
        [task.format_demonstration("<d1>", 0), task.format_demonstration("<d2>", 1), task.format_query("<x>")]
    )
    assert prompt == "Review: <d1>\nSentiment: Negative\nReview: <d2>\nSentiment: Positive\nReview: <x>\nSentiment:"
    assert task.format_query("a {b} c") == "Review: a {b} c\nSentiment:"  # text is never re-formatted
    with pytest.raises(InvalidConfigError):
        task.format_demonstration("x", 2)


def test_escaped_braces_are_literal_text():
    task = make_task(template="{{x}} {text} =>{label}")
    assert task.template_parts() == ("{x} ", " =>", "")
    assert task.format_demonstration("t", 1) == "{x} t => Positive"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("Review: \nSentiment:{label}", "exactly once"),
        ("Review: {text} {text}\nSentiment:{label}", "exactly once"),
        ("Review: {text}\nSentiment:", "exactly once"),
        ("Sentiment:{label} Review: {text}", "before"),
        ("Review: {text}\nSentiment:{label}\n", "last thing"),
        ("Review: {text}\nTopic: {topic}\nSentiment:{label}", "topic"),
        ("Review: {text} {}\nSentiment:{label}", "besides"),
        ("Review: {text!r}\nSentiment:{label}", "conversion"),
        ("Review: {text\nSentiment:{label}", "malformed"),
    ],
)
def test_bad_templates_are_refused(template, problem):
    with pytest.raises(TaskDefinitionError, match=problem):
        make_task(template=template)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (dict(label_words=(" Yes",), class_names=("yes",)), "at least 2"),
        (dict(class_names=("negative",)), "2 label words but 1 class names"),
        (dict(label_words=(" Yes", " Yes")), "repeat"),
        (dict(class_names=("a", "a")), "repeat"),
        (dict(label_words=(" Yes", "")), "non-empty"),
        (dict(label_words=(" Yes", " ")), "non-empty"),
        (dict(name=""), "name"),
        (dict(max_test=0), "max_test"),
    ],
)
def test_bad_label_words_and_fields_are_refused(overrides, problem):
    with pytest.raises(TaskDefinitionError, match=problem):
        make_task(**overrides)


def test_label_word_without_leading_space_warns_but_works():
    with pytest.warns(UserWarning, match="'Positive' has no leading space"):
        task = make_task(label_words=(" Negative", "Positive"))
    assert task.format_demonstration("x", 1) == "Review: x\nSentiment:Positive"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_task()  # the normal form does not warn


def test_lists_are_stored_as_tuples_and_tasks_hash():
    task = make_task(label_words=[" Negative", " Positive"], class_names=["negative", "positive"])
    assert task.label_words == (" Negative", " Positive") and isinstance(task.class_names, tuple)
    assert hash(get_task("sst2")) == hash(get_task("sst2"))


# ---------------------------------------------------------------- registry


def test_unknown_task_lists_valid_names():
    with pytest.raises(UnknownTaskError) as caught:
        get_task("sst-2")
    message = str(caught.value)
    assert "'sst-2'" in message
    for name in ("sst2", "agnews", "trec", "emoc"):
        assert name in message
    assert isinstance(caught.value, KeyError)


def test_get_task_passes_a_task_through():
    task = make_task()
    assert get_task(task) is task


def test_duplicate_registration_is_refused_unless_overwrite(registry):
    with pytest.raises(TaskDefinitionError, match="already registered.*overwrite=True"):
        register_task(make_task(name="sst2"))
    assert get_task("sst2").template == "Review: {text}\nSentiment:{label}"
    first = register_task(make_task(name="toy"))
    assert get_task("toy") is first and "toy" in list_tasks()
    second = register_task(make_task(name="toy", template="R: {text}\nS:{label}"), overwrite=True)
    assert get_task("toy") is second


def test_private_registry_copy_leaves_the_real_one_untouched():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
        register_task(make_task(name="temporary"))
        assert "temporary" in list_tasks()
    assert "temporary" not in list_tasks()


# ---------------------------------------------------------------- malformed data files


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (pa.table({"sentence": ["a"], "label": [0]}), r"lacks column\(s\) \['text'\]"),
        (pa.table({"text": ["a"], "label": ["0"]}), "'label' has type string"),
        (pa.table({"text": [1], "label": [0]}), "'text' has type int64"),
        (pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.int64())}), "no rows"),
        (pa.table({"text": ["a", "b"], "label": [0, 2]}), r"labels \[2\] are outside 0..1"),
        (pa.table({"text": ["a", "b"], "label": [-1, 0]}), r"labels \[-1\] are outside"),
        (pa.table({"text": ["a", None], "label": [0, 1]}), "null"),
        (
            pa.table({"text": ["a"], "label": pa.array([2**64 - 1], pa.uint64())}),
            r"labels \[18446744073709551615\] are outside",
        ),
        (
            pa.Table.from_arrays([pa.array(["a"]), pa.array([0]), pa.array([1])], names=["text", "label", "label"]),
            r"column\(s\) \['label'\] more than once",
        ),
    ],
)
def test_malformed_local_files_are_refused(tmp_path, table, problem):
    write_split(tmp_path, "train", table)
    task = make_task(data_dir=tmp_path)
    with pytest.raises(DataFileError, match=problem) as caught:
        load_split(task, "train")
    assert "train.parquet" in str(caught.value)


def test_unreadable_and_missing_files_are_refused(tmp_path):
    (tmp_path / "train.parquet").write_bytes(b"not a parquet file")
    task = make_task(data_dir=tmp_path)
    with pytest.raises(DataFileError, match="train.parquet is not a readable parquet file"):
        load_split(task, "train")
    with pytest.raises(DataFileError, match=r"test\.parquet does not exist \(splits found: \['train'\]\)"):
        load_split(task, "test")
    with pytest.raises(DataFileError, match="no local data folder"):
        load_split(make_task(), "train")


def test_extra_columns_are_dropped_and_int32_labels_widened(tmp_path):
    write_split(tmp_path, "train", pa.table({"idx": [7, 8], "label": pa.array([1, 0], pa.int32()), "text": ["a", "b"]}))
    dataset = load_split(make_task(data_dir=tmp_path), "train")
    assert dataset.column_names == ["text", "label"]
    assert dataset[:] == {"text": ["a", "b"], "label": [1, 0]}
    assert dataset.features["label"].dtype == "int64"


def test_redefined_task_is_validated_again(tmp_path, registry):
    write_split(tmp_path, "train", pa.table({"text": ["a", "b", "c"], "label": [0, 1, 2]}))
    three = make_task(data_dir=tmp_path, label_words=(" A", " B", " C"), class_names=("a", "b", "c"))
    assert load_split(three, "train").num_rows == 3
    with pytest.raises(DataFileError, match="outside 0..1"):
        load_split(make_task(data_dir=tmp_path), "train")


# ---------------------------------------------------------------- hub source (no network: load_dataset is faked)


def test_hub_failure_says_local_works(monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataFileError, match=r"could not load task 'sst2' from the Hugging Face hub.*source='local'"):
        load_split("sst2", "train", source="hub")
    with pytest.raises(DataFileError, match="no hub split 'dev'"):
        load_split("trec", "dev", source="hub")


def test_hub_columns_are_renamed(monkeypatch):
    calls = []

    def fake_load(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict({"text": ["q1 ?", "q2 ?"], "coarse_label": [5, 0], "fine_label": [40, 1]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(tasks, "_SPLIT_CACHE", {})
    dataset = load_split("trec", "test", source="hub")
    assert calls == [("CogComp/trec", None, "test")]
    assert dataset.column_names == ["text", "label"]
    assert dataset[:] == {"text": ["q1 ?", "q2 ?"], "label": [5, 0]}


# ---------------------------------------------------------------- custom tasks from files


def test_task_from_files_round_trip(tmp_path):
    texts = ['he said "great" , twice', "plain, with comma", "tab-free 'quotes'", "last one "]
    labels = [1, 0, 1, 0]
    csv_path = tmp_path / "train.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))
    tsv_path = tmp_path / "test.tsv"
    tsv_path.write_text(
        "label\ttext\n" + "".join(f"{label}\t{text}\n" for text, label in zip(texts, labels)), encoding="utf-8"
    )
    task = task_from_files(
        "mine",
        "Text: {text}\nLabel:{label}",
        [" bad", " good"],
        ["bad", "good"],
        csv_path,
        tsv_path,
        data_dir=tmp_path / "built",
    )
    assert task.data_dir == tmp_path / "built"
    for split in ("train", "test"):
        assert load_split(task, split)[:] == {"text": texts, "label": labels}
    assert "mine" not in list_tasks()  # not registered unless asked


def test_task_from_files_jsonl_parquet_class_names_and_register(tmp_path, registry):
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"text": text, "label": label}) for text, label in [("x", "good"), ("y", "bad")]) + "\n"
    )
    parquet = tmp_path / "test.parquet"
    pq.write_table(pa.table({"text": ["z"], "label": ["good"]}), parquet)
    task = task_from_files(
        "mine2",
        "{text} ->{label}",
        (" bad", " good"),
        ("bad", "good"),
        jsonl,
        parquet,
        register=True,
        data_dir=tmp_path / "built",
    )
    assert get_task("mine2") is task
    assert load_split("mine2", "train")[:] == {"text": ["x", "y"], "label": [1, 0]}
    assert load_split("mine2", "test")[:] == {"text": ["z"], "label": [1]}


def test_task_from_files_refuses_bad_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where a refused file's folder would be left
    (tmp_path / "tmp").mkdir()
    args = ("bad", "{text}:{label}", (" a", " b"), ("a", "b"))
    missing_column = tmp_path / "train.csv"
    missing_column.write_text("sentence,label\nx,0\n")
    good = tmp_path / "good.csv"
    good.write_text("text,label\nx,0\ny,1\n")
    with pytest.raises(DataFileError, match=r"train\.csv lacks column\(s\) \['text'\]"):
        task_from_files(*args, missing_column, good)
    unknown_label = tmp_path / "labels.csv"
    unknown_label.write_text("text,label\nx,maybe\n")
    with pytest.raises(DataFileError, match="'maybe' is neither a class id nor one of the class names"):
        task_from_files(*args, good, unknown_label)
    out_of_range = tmp_path / "range.csv"
    out_of_range.write_text("text,label\nx,3\n")
    with pytest.raises(DataFileError, match=r"range\.csv: labels \[3\] are outside"):
        task_from_files(*args, good, out_of_range)
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(DataFileError, match="empty.csv has no rows"):
        task_from_files(*args, good, empty)
    with pytest.raises(DataFileError, match="unsupported file type '.xlsx'"):
        (tmp_path / "x.xlsx").write_text("")
        task_from_files(*args, good, tmp_path / "x.xlsx")
    with pytest.raises(DataFileError, match="does not exist"):
        task_from_files(*args, good, tmp_path / "nowhere.csv")
    assert list((tmp_path / "tmp").iterdir()) == []  # no temporary task folder outlives a refusal


# ---------------------------------------------------------------- custom files read exactly as written (issue 17)


def test_task_from_files_never_writes_over_the_users_files(tmp_path):
    """Issue 17.3: data_dir pointed at the folder of the inputs overwrote them (extra columns, string labels lost)."""
    args = ("mine", "{text}:{label}", (" a", " b"), ("a", "b"))
    own = tmp_path / "own"
    own.mkdir()
    pq.write_table(pa.table({"text": ["x", "y"], "label": ["a", "b"], "id": [1, 2]}), own / "train.parquet")
    pq.write_table(pa.table({"text": ["z"], "label": ["b"], "id": [3]}), own / "test.parquet")
    before = {path.name: path.read_bytes() for path in own.iterdir()}
    with pytest.raises(
        DataFileError,
        match=r"own/train\.parquet already exists and it is one of your input files.*"
        r"never writes over",
    ):
        task_from_files(*args, own / "train.parquet", own / "test.parquet", data_dir=own)
    # A split file there that is not an input is the user's too.
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("text,label\nx,a\ny,b\n")
    with pytest.raises(DataFileError, match=r"own/train\.parquet already exists and anchorlens did not write it"):
        task_from_files(*args, elsewhere, elsewhere, data_dir=own)
    assert {path.name: path.read_bytes() for path in own.iterdir()} == before

    # Its own files it replaces (a rerun of the same script), and a file edited since is the user's again.
    built = tmp_path / "built"
    task_from_files(*args, own / "train.parquet", own / "test.parquet", data_dir=built)
    task = task_from_files(*args, elsewhere, own / "test.parquet", data_dir=built)
    assert load_split(task, "train")[:] == {"text": ["x", "y"], "label": [0, 1]}
    pq.write_table(pa.table({"text": ["edited"], "label": [1]}), built / "test.parquet")
    with pytest.raises(DataFileError, match=r"built/test\.parquet already exists and anchorlens did not write it"):
        task_from_files(*args, elsewhere, elsewhere, data_dir=built)
    assert pq.read_table(built / "test.parquet").column("text").to_pylist() == ["edited"]


def _write(path, content) -> None:
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    else:
        path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        # a tab inside a TSV text used to cut the text (or shift the label) silently
        (
            "tab.tsv",
            "label\ttext\n1\thello\tworld\n0\tfine\n",
            r"line 2: 3 fields but the header has 2 \(label, text\); "
            r"a text holding a tab",
        ),
        ("tab_first.tsv", "text\tlabel\nhello\tworld\t1\n", "line 2: 3 fields.*a text holding a tab"),
        # the last of two 'text' columns used to win
        ("two.csv", "text,label,text\nfirst,0,second\n", r"the header names column\(s\) \['text'\] more than once"),
        # a field beyond the header used to be dropped
        ("extra.csv", "text,label\nx,0,surprise\ny,1\n", "line 2: 3 fields but the header has 2.*quote a text"),
        ("short.csv", "text,label\nx\n", "line 2: 1 field but the header has 2"),
        ("dup.jsonl", '{"text": "a", "text": "b", "label": 0}\n', r"line 1: key\(s\) \['text'\] appear more than once"),
        ("bad.jsonl", '{"text": "a", "label": 0}\n{"text": \n', "line 2 is not valid JSON"),
        (
            "dup.parquet",
            pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"]), pa.array([0])], names=["text", "text", "label"]),
            r"has column\(s\) \['text'\] more than once",
        ),
        # labels that crashed with ValueError / OverflowError / ArrowInvalid
        (
            "superscript.csv",
            "text,label\nx,\u00b2\n",
            "label '\u00b2' is neither a class id nor one of the class names",
        ),
        (
            "huge.csv",
            "text,label\nx,100000000000000000000000\n",
            r"labels \[100000000000000000000000\] are outside 0..1",
        ),
        (
            "huge.jsonl",
            '{"text": "x", "label": 100000000000000000000000}\n',
            r"labels \[100000000000000000000000\] are outside",
        ),
        (
            "uint64.parquet",
            pa.table({"text": ["x", "y"], "label": pa.array([0, 2**64 - 1], pa.uint64())}),
            r"labels \[18446744073709551615\] are outside 0..1",
        ),
    ],
)
def test_custom_files_that_would_be_read_other_than_written_are_refused(tmp_path, name, content, problem):
    good = tmp_path / "good.csv"
    good.write_text("text,label\nx,0\ny,1\n")
    _write(tmp_path / name, content)
    with pytest.raises(DataFileError, match=problem) as caught:
        task_from_files(
            "t", "{text}:{label}", (" a", " b"), ("a", "b"), good, tmp_path / name, data_dir=tmp_path / "out"
        )
    assert name in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out" / "train.parquet").exists()  # nothing is written when an input is refused


def test_a_folder_passed_as_a_data_file_is_named_as_a_folder(tmp_path):
    (tmp_path / "train.csv").mkdir()
    with pytest.raises(DataFileError, match=r"train\.csv is a folder, not a data file; pass the \.csv, .* file itself"):
        task_from_files("t", "{text}:{label}", (" a", " b"), ("a", "b"), tmp_path / "train.csv", tmp_path / "train.csv")


def test_custom_files_keep_what_they_can(tmp_path):
    """What is read as written still loads: a byte-order mark, quoted commas and tabs in a CSV, extra named
    columns (the task's splits hold text and label only; the file itself is untouched), in-range uint64 labels."""
    csv_path = tmp_path / "train.csv"
    csv_path.write_text('\ufefftext,label,source\n"a, with\ttab",1,web\nplain,0,web\n', encoding="utf-8")
    parquet = tmp_path / "test.parquet"
    pq.write_table(pa.table({"text": ["z", "w"], "label": pa.array([1, 0], pa.uint64())}), parquet)
    task = task_from_files(
        "t", "{text}:{label}", (" a", " b"), ("a", "b"), csv_path, parquet, data_dir=tmp_path / "out"
    )
    assert load_split(task, "train")[:] == {"text": ["a, with\ttab", "plain"], "label": [1, 0]}
    assert load_split(task, "test")[:] == {"text": ["z", "w"], "label": [1, 0]}


@pytest.mark.parametrize("name", ["/some/abs", "../../x", "a/b", "a\\b", ".", "..", ".hidden", "tab\there", "x" * 201])
def test_a_task_name_that_is_not_a_file_name_is_refused_when_the_task_is_made(tmp_path, name):
    """Issue 31 item 11: ``task_from_files("/some/abs", ...)`` then a run wrote ``/some/abs-seed42.*``, and
    ``../../x`` or ``a/b`` wrote elsewhere before refusing. The name is checked where the task is made, before
    its data files are read or anything is written."""
    train = tmp_path / "train.csv"
    train.write_text("text,label\nx,0\ny,1\n")
    with pytest.raises(TaskDefinitionError, match="cannot be part of a file name"):
        task_from_files(
            name, "{text} ->{label}", [" bad", " good"], ["bad", "good"], train, train, data_dir=tmp_path / "b"
        )
    with pytest.raises(TaskDefinitionError, match="cannot be part of a file name"):
        Task(name=name, template="{text} ->{label}", label_words=[" bad", " good"], class_names=["bad", "good"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train.csv"]
