"""Build the packaged task data: ``anchorlens/data/<task>/<split>.parquet`` plus ``PROVENANCE.md``.

The raw files in ``../shared/data`` (see each ``SOURCE.md``) are turned into the exact strings the
Hugging Face ``datasets`` versions hold, so that prompts built offline tokenize the same as the paper's.
Every parquet file has exactly two columns, ``text`` (string) and ``label`` (int64), rows in source
order, zstd-compressed. The script checks row and per-class counts against ``SOURCE.md`` and stops at
the first mismatch, so a changed input can never silently produce different data.

Usage: ``python scripts/build_data.py [RAW_DATA_DIR]`` (default ``../shared/data`` from the repo root).
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = REPO_ROOT / "anchorlens" / "data"

TREC_CLASSES = ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")
EMOC_CLASSES = ("others", "happy", "sad", "angry")
AGNEWS_POOL_SEEDS = (13, 21, 42, 87, 100)

Rows = list[tuple[str, int]]


class BuildError(RuntimeError):
    """The raw data does not look like SOURCE.md says; nothing sensible can be written."""


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file, CRLF or LF, without a final empty line.

    Splits on ``\\n`` only (not ``str.splitlines``, which would also split on rarer Unicode breaks).
    """
    text = path.read_bytes().decode("utf-8")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def split_tsv_line(line: str, n_fields: int, path: Path, line_number: int) -> list[str]:
    """Split on tabs without any quote handling (sentences contain quotes); check the field count."""
    fields = line.split("\t")
    if len(fields) != n_fields:
        raise BuildError(f"{path}:{line_number}: expected {n_fields} tab-separated fields, got {len(fields)}")
    return fields


def check_header(lines: Sequence[str], expected: str, path: Path) -> None:
    if not lines or lines[0] != expected:
        raise BuildError(f"{path}: header should be {expected!r}, got {lines[0] if lines else None!r}")


# ---------------------------------------------------------------- SST-2


def sst2_train(path: Path) -> Rows:
    """HF ``glue/sst2`` train: ``sentence.strip() + " "``, and the one ``10000`` written back as ``10,000``."""
    lines = read_lines(path)
    check_header(lines, "label\tsentence", path)
    rows: Rows = []
    for number, line in enumerate(lines[1:], start=2):
        label, sentence = split_tsv_line(line, 2, path, number)
        rows.append((sentence.strip() + " ", int(label)))
    with_number = [i for i, (text, _) in enumerate(rows) if "10000" in text]
    if len(with_number) != 1:
        raise BuildError(f"{path}: expected exactly one sentence containing '10000', found {len(with_number)}")
    index = with_number[0]
    rows[index] = (rows[index][0].replace("10000", "10,000"), rows[index][1])
    return rows


def sst2_validation(path: Path) -> Rows:
    """GLUE dev.tsv as-is: the sentence keeps its trailing space, exactly like HF."""
    lines = read_lines(path)
    check_header(lines, "sentence\tlabel", path)
    rows: Rows = []
    for number, line in enumerate(lines[1:], start=2):
        sentence, label = split_tsv_line(line, 2, path, number)
        rows.append((sentence, int(label)))
    return rows


# ---------------------------------------------------------------- TREC


def trec_split(path: Path) -> Rows:
    """Li & Roth ``COARSE:fine question`` lines; HF text is everything after the first space.

    The one non-ASCII byte of the original is stored as U+FFFD; HF has a space there.
    """
    rows: Rows = []
    for number, line in enumerate(read_lines(path), start=1):
        line = line.replace("\ufffd", " ").strip()
        tag, _, question = line.partition(" ")
        coarse = tag.split(":", 1)[0]
        if coarse not in TREC_CLASSES or not question:
            raise BuildError(f"{path}:{number}: cannot parse {line!r} as 'COARSE:fine question'")
        rows.append((question, TREC_CLASSES.index(coarse)))
    return rows


# ---------------------------------------------------------------- AG News


def agnews_test(path: Path) -> Rows:
    """Original Zhang et al. CSV: ``"class","title","description"``; HF text = title + " " + description."""
    rows: Rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, fields in enumerate(csv.reader(handle, quotechar='"', skipinitialspace=True), start=1):
            if len(fields) != 3:
                raise BuildError(f"{path}: record {number} has {len(fields)} fields, expected 3")
            label, title, description = fields
            rows.append((title + " " + description, int(label) - 1))
    return rows


def agnews_train_pool(pool_dir: Path) -> tuple[Rows, int]:
    """The rlprompt few-shot subsets, seeds in numeric order, train then dev, first copy of each text kept.

    Returns the de-duplicated rows and the number of rows read before de-duplication.
    """
    rows: Rows = []
    seen: set[str] = set()
    total = 0
    for seed in AGNEWS_POOL_SEEDS:
        for split in ("train", "dev"):
            path = pool_dir / f"16-{seed}" / f"{split}.tsv"
            lines = read_lines(path)
            check_header(lines, "text\tlabel", path)
            for number, line in enumerate(lines[1:], start=2):
                text, label = split_tsv_line(line, 2, path, number)
                total += 1
                if text not in seen:
                    seen.add(text)
                    rows.append((text, int(label)))
    return rows, total


# ---------------------------------------------------------------- EmoC


def emoc_split(path: Path) -> Rows:
    """Official SemEval TSV; text = the three turns joined by one space, lower-cased (HF ``emo`` is lower-case)."""
    lines = read_lines(path)
    check_header(lines, "id\tturn1\tturn2\tturn3\tlabel", path)
    rows: Rows = []
    for number, line in enumerate(lines[1:], start=2):
        _id, turn1, turn2, turn3, label = split_tsv_line(line, 5, path, number)
        if label not in EMOC_CLASSES:
            raise BuildError(f"{path}:{number}: unknown label {label!r}, expected one of {EMOC_CLASSES}")
        rows.append((" ".join([turn1, turn2, turn3]).lower(), EMOC_CLASSES.index(label)))
    return rows


# ---------------------------------------------------------------- checks and writing


def class_counts(rows: Rows) -> dict[int, int]:
    return dict(sorted(collections.Counter(label for _, label in rows).items()))


def check_counts(name: str, rows: Rows, expected_total: int, expected_per_class: dict[int, int] | None) -> None:
    counts = class_counts(rows)
    print(f"  {name}: {len(rows)} rows, per class {counts}")
    if len(rows) != expected_total:
        raise BuildError(f"{name}: {len(rows)} rows, SOURCE.md says {expected_total}")
    if expected_per_class is not None and counts != expected_per_class:
        raise BuildError(f"{name}: per-class counts {counts}, SOURCE.md says {expected_per_class}")


def write_parquet(rows: Rows, path: Path) -> int:
    """Write ``text``/``label`` with an explicit schema (no pandas metadata) and return the file size.

    zstd level 19 and no dictionary for the (nearly unique) texts: about 40% smaller than the defaults,
    read speed unchanged, and these files are committed.
    """
    table = pa.table(
        {
            "text": pa.array([t for t, _ in rows], pa.string()),
            "label": pa.array([label for _, label in rows], pa.int64()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", compression_level=19, use_dictionary=["label"])
    return path.stat().st_size


def by_name(counts: dict[str, int], classes: Sequence[str]) -> dict[int, int]:
    return {classes.index(name): n for name, n in sorted(counts.items(), key=lambda kv: classes.index(kv[0]))}


def counts_line(rows: Rows, classes: Sequence[str]) -> str:
    return ", ".join(f"{classes[label]} {n}" for label, n in class_counts(rows).items())


PROVENANCE = {
    "sst2": """# SST-2 (GLUE) — packaged copy

Same task as Hugging Face `glue`/`sst2`. Built by `scripts/build_data.py` from `shared/data/sst2`.

| split | rows | per class | raw file and origin |
|---|---|---|---|
| `train` | {train_n} | {train_c} | `train.tsv` from github `awake020/pytorch_Bert_sst2`, `SST-2/train.tsv` (commit `54e22ca58a656750f474ec61ebccaf5ff596de96`); row order verified equal to HF `glue/sst2` train |
| `validation` | {validation_n} | {validation_c} | original GLUE `dev.tsv` from github `forest-snow/alps`, `data/SST-2/test.tsv` (commit `43232f234087cdbb4b06cd0e3997460610a0dbfd`) |

Labels: 0 negative (" Negative"), 1 positive (" Positive"). The paper uses `validation` as its test set.

Transformation (reproduces the HF `sentence` strings exactly):
* `train`: the file has columns `label\\tsentence`, CRLF, trailing whitespace stripped. Lines split on
  tab (no CSV quoting), text = `sentence.strip() + " "`; the single sentence containing `10000` gets
  `10,000` (as in GLUE).
* `validation`: header `sentence\\tlabel`, LF; the sentence is kept exactly, including GLUE's trailing space.

Licence: none stated by the SST authors (Socher et al. 2013); GLUE (Wang et al. 2019) asks users to
cite the original paper. The awake020 repository has no licence file; the alps repository is MIT.
""",
    "trec": """# TREC question classification, coarse (6 classes) — packaged copy

Same task as Hugging Face `trec` (`coarse_label`). Built by `scripts/build_data.py` from `shared/data/trec`.

| split | rows | per class | raw file and origin |
|---|---|---|---|
| `train` | {train_n} | {train_c} | `train.txt` (= Li & Roth `train_5500.label`) from github `tonyzhaozh/few-shot-learning`, `data/trec/train.txt` (commit `9d35e2628f6705b753a7c721fb74bcf1b7b7e6df`, Apache-2.0 repo) |
| `test` | {test_n} | {test_c} | `test.txt` (= `TREC_10.label`), same repository |

Labels (HF `coarse_label` order, also the paper's): 0 ABBR " Abbreviation", 1 ENTY " Entity",
2 DESC " Description", 3 HUM " Person", 4 LOC " Location", 5 NUM " Number".

Transformation: each line `COARSE:fine question`; the stored U+FFFD (one byte of the original,
`sister\\xF0city`) is replaced by a space as HF does, then text = `line.strip().partition(" ")[2]`,
label = index of COARSE in the order above.

Licence: Li & Roth 2002, Hovy et al. 2001; freely distributed by CogComp for research, no formal licence.
""",
    "agnews": """# AG News (4 classes) — packaged copy

Same task as Hugging Face `ag_news`. Built by `scripts/build_data.py` from `shared/data/agnews`.

| split | rows | per class | raw files and origin |
|---|---|---|---|
| `test` | {test_n} | {test_c} | `test.csv`, byte-identical to the original Zhang et al. `ag_news_csv/test.csv` (md5 `d52ea96a97a2d943681189a97654912d`), via github `Hongcheng-Gao/RobTest-Demo` `data/agnews/test copy.csv` (commit `37688d9e4800aa969050bd01f09033221aa5834e`) |
| `train` | {train_n} | {train_c} | **not** the HF train split: the few-shot pool `16-{{13,21,42,87,100}}/{{train,dev}}.tsv` of github `mingkaid/rl-prompt`, `examples/few-shot-classification/data/16-shot/agnews` (commit `9364152dc5a8c9364b1bb975b9448979263520d0`, MIT), all drawn from the AG News train split |

**The full 120,000-row train split is not available offline**, so demonstrations (and the extra
re-weighting examples) are drawn from this {train_n}-row pool; the paper's exact AG News
demonstrations cannot be reproduced offline (use `source="hub"` when the hub is reachable).

Labels: 0 World " World", 1 Sports " Sports", 2 Business " Business", 3 Sci/Tech " Technology".

Transformation:
* `test`: CSV module (quote `"`, `skipinitialspace=True`), label = `int(class) - 1`,
  text = `title + " " + description` (backslashes and `#39;`-style escapes left as-is, as HF does).
* `train`: files read in seed order 13, 21, 42, 87, 100, within each `train.tsv` then `dev.tsv`, rows
  in file order ({pool_total} rows, 16 per class per file; the 2 duplicates are a Sports text
  first in `16-13/dev.tsv` and a World text first in `16-42/dev.tsv`); lines split on the one tab (`text` is already
  the HF form, `label` already 0-3); duplicate texts dropped keeping the first occurrence.

Licence: Zhang, Zhao & LeCun 2015 (built from Gulli's AG corpus): research / non-commercial use.
""",
    "emoc": """# EmoContext (SemEval-2019 Task 3), the paper's "EmoC" — packaged copy

Same task as Hugging Face `emo`. Built by `scripts/build_data.py` from `shared/data/emoc`.

| split | rows | per class | raw file and origin |
|---|---|---|---|
| `train` | {train_n} | {train_c} | `train.txt` from github `L-Maybe/SemEval-2019-task3-EmoContext`, `char-embeddings/data/train.txt` (commit `c66bd7324402c76b3e8134fb598f2215180dc362`) |
| `test` | {test_n} | {test_c} | `test.txt`, same repository (official Test2 set with gold labels) |
| `dev` | {dev_n} | {dev_c} | `dev.txt`, same repository (official dev/Test1 set; not used by the paper) |

Labels (HF `emo` order): 0 others " Others", 1 happy " Happy", 2 sad " Sad", 3 angry " Angry".

Transformation: official TSV (CRLF, header `id\\tturn1\\tturn2\\tturn3\\tlabel`), split on tabs;
text = `" ".join([turn1, turn2, turn3]).lower()`, label by the order above, rows in file (`id`) order.

**Differs from HF `emo`**: HF's text is a preprocessed string whose exact normalisation is unknown
(its one published example is lower-cased with turns joined by one space and at least `?` removed);
only lower-casing is applied here. The HF row order is assumed, not verified, to follow the `id`
order. Sizes match HF (train 30,160, test 5,509). Results will differ slightly from the paper's.

Licence: Chatterjee et al. 2019 (SemEval); HF lists "unknown"; released by the organisers for research use.
""",
}


def build(raw: Path, out: Path) -> dict[str, int]:
    """Build every task's splits under ``out``; return file sizes in bytes by relative path."""
    splits: dict[str, dict[str, Rows]] = {}
    classes: dict[str, Sequence[str]] = {
        "sst2": ("negative", "positive"),
        "trec": TREC_CLASSES,
        "agnews": ("World", "Sports", "Business", "Sci/Tech"),
        "emoc": EMOC_CLASSES,
    }

    print("sst2")
    splits["sst2"] = {
        "train": sst2_train(raw / "sst2" / "train.tsv"),
        "validation": sst2_validation(raw / "sst2" / "dev.tsv"),
    }
    check_counts("train", splits["sst2"]["train"], 67349, {0: 29780, 1: 37569})
    check_counts("validation", splits["sst2"]["validation"], 872, {0: 428, 1: 444})

    print("trec")
    splits["trec"] = {"train": trec_split(raw / "trec" / "train.txt"), "test": trec_split(raw / "trec" / "test.txt")}
    check_counts(
        "train",
        splits["trec"]["train"],
        5452,
        by_name({"ENTY": 1250, "HUM": 1223, "DESC": 1162, "NUM": 896, "LOC": 835, "ABBR": 86}, TREC_CLASSES),
    )
    check_counts(
        "test",
        splits["trec"]["test"],
        500,
        by_name({"DESC": 138, "NUM": 113, "ENTY": 94, "LOC": 81, "HUM": 65, "ABBR": 9}, TREC_CLASSES),
    )

    print("agnews")
    pool, pool_total = agnews_train_pool(raw / "agnews" / "train_pool_rlprompt")
    splits["agnews"] = {"train": pool, "test": agnews_test(raw / "agnews" / "test.csv")}
    if pool_total != 640:
        raise BuildError(f"agnews pool: read {pool_total} rows, SOURCE.md says 10 files x 64 = 640")
    check_counts("train (pool, de-duplicated)", pool, 638, None)
    check_counts("test", splits["agnews"]["test"], 7600, {0: 1900, 1: 1900, 2: 1900, 3: 1900})
    test_texts = {text for text, _ in splits["agnews"]["test"]}
    if any(text in test_texts for text, _ in pool):
        raise BuildError("agnews: a pool text occurs in test.csv; SOURCE.md says none does")

    print("emoc")
    splits["emoc"] = {name: emoc_split(raw / "emoc" / f"{name}.txt") for name in ("train", "test", "dev")}
    check_counts(
        "train",
        splits["emoc"]["train"],
        30160,
        by_name({"others": 14948, "angry": 5506, "sad": 5463, "happy": 4243}, EMOC_CLASSES),
    )
    check_counts(
        "test",
        splits["emoc"]["test"],
        5509,
        by_name({"others": 4630, "angry": 348, "sad": 271, "happy": 260}, EMOC_CLASSES),
    )
    check_counts("dev", splits["emoc"]["dev"], 2755, None)

    sizes: dict[str, int] = {}
    for task, task_splits in splits.items():
        fields: dict[str, object] = {"pool_total": pool_total}
        for split, rows in task_splits.items():
            sizes[f"{task}/{split}.parquet"] = write_parquet(rows, out / task / f"{split}.parquet")
            fields[f"{split}_n"] = f"{len(rows):,}"
            fields[f"{split}_c"] = counts_line(rows, classes[task])
        (out / task / "PROVENANCE.md").write_text(PROVENANCE[task].format(**fields), encoding="utf-8")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "raw",
        nargs="?",
        type=Path,
        default=REPO_ROOT / ".." / "shared" / "data",
        help="folder with the raw task folders (default: ../shared/data from the repo root)",
    )
    parser.add_argument("--out", type=Path, default=PACKAGE_DATA, help="output folder (default: anchorlens/data)")
    args = parser.parse_args(argv)
    try:
        sizes = build(args.raw.resolve(), args.out)
    except (BuildError, OSError) as error:
        print(f"build_data: {error}", file=sys.stderr)
        return 1
    print("written:")
    for name, size in sizes.items():
        print(f"  {name}: {size / 1024:.1f} KiB")
    print(f"  total {sum(sizes.values()) / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
