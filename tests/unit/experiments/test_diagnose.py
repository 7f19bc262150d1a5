"""Error diagnosis (SPEC §6): the two confusion matrices on hand-made cases and a run on a tiny model."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from anchorlens.errors import EmptyClassError
from anchorlens.experiments.diagnose import (
    DiagnoseConfig,
    DiagnoseResult,
    diagnosis_inputs,
    keys_and_queries,
    mantel_test,
    predicted_confusion,
    run_diagnose,
    true_confusion,
)
from anchorlens.prompts import make_batch, prompt_settings, task_prompts
from anchorlens.sampling import sample_demonstrations, sample_test_set
from anchorlens.stats import resamples_for, seed_interval, within_sd_of
from anchorlens.tasks import get_task, load_split, task_from_files


def test_predicted_confusion_follows_the_query_pca():
    generator = np.random.default_rng(0)
    queries = generator.normal(size=(50, 6)) * np.array([5, 3, 1, 0.1, 0.1, 0.1])
    keys = generator.normal(size=(3, 6))
    matrix = predicted_confusion(keys, queries, n_components=2)
    pca = PCA(n_components=2, random_state=42).fit(queries)
    projected = (keys @ pca.components_.T) * pca.singular_values_
    distance = lambda a, b: np.linalg.norm(projected[a] - projected[b])  # noqa: E731
    largest = max(distance(0, 1), distance(0, 2), distance(1, 2))
    assert matrix[0, 1] == pytest.approx(distance(0, 1) / largest)
    assert np.allclose(np.diag(matrix), 1) and np.allclose(matrix, matrix.T) and matrix.max() == pytest.approx(1)


def test_true_confusion_by_hand():
    probabilities = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]])
    gold = np.array([0, 0, 1, 1])
    matrix = true_confusion(probabilities, gold)
    assert matrix[0, 1] == 1.0 and matrix[1, 0] == 1.0  # p0/p1 ranks every gold-0 input above every gold-1 input
    assert np.isnan(matrix[0, 2]) and np.isnan(matrix[2, 1])  # class 2 has no test input
    gold_swapped = np.array([1, 1, 0, 0])
    assert true_confusion(probabilities, gold_swapped)[0, 1] == 0.0


def test_keys_are_the_same_in_every_prompt_and_queries_differ(llama_like):
    _, prompts = task_prompts(llama_like.tokenizer, "sst2", 42, n_test=3, **prompt_settings(llama_like))
    keys, queries, probabilities = keys_and_queries(llama_like, make_batch(prompts), layer=1)
    assert keys.shape == (3, 2, llama_like.cfg.n_heads * llama_like.cfg.d_head)
    assert torch.allclose(keys[0], keys[1], atol=1e-5) and torch.allclose(keys[0], keys[2], atol=1e-5)
    assert not torch.allclose(queries[0], queries[1])
    assert torch.allclose(probabilities.sum(-1), torch.ones(3))


def test_layer_out_of_range(gpt2_like):
    from anchorlens.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="layer 99 does not exist; the model has layers 0..1"):
        run_diagnose(gpt2_like, "sst2", DiagnoseConfig(seeds=(1,), n_test=2, layer=99), progress=False)


def test_diagnosis_inputs_give_every_trec_class_30_inputs():
    """TREC's test split has 9 ABBR questions: the default protocol tops ABBR up from the train split (never a
    demonstration row) and short test classes from further down the test shuffle; the seed's test inputs stay."""
    for seed in (42, 43, 44, 45, 46):
        demonstrations, _ = sample_demonstrations("trec", seed)
        rows = [example.index for example in demonstrations]
        inputs = diagnosis_inputs("trec", seed, n_test=200, demonstration_rows=rows)
        labels = np.array([item.example.label for item in inputs])
        assert np.bincount(labels, minlength=6).min() >= 30
        assert [item.example.index for item in inputs[:200]] == [e.index for e in sample_test_set("trec", seed, 200)]
        assert all(item.split == "test" for item in inputs[:200])
        train = [item for item in inputs if item.split == "train"]
        assert {item.example.label for item in train} == {0} and len(train) == 21  # 9 ABBR in test + 21
        assert not {item.example.index for item in train} & set(rows)
        keys = [(item.split, item.example.index) for item in inputs]
        assert len(set(keys)) == len(keys)
        test_labels = np.asarray(load_split("trec", "test")["label"])
        train_labels = np.asarray(load_split("trec", "train")["label"])
        for item in inputs:
            source = test_labels if item.split == "test" else train_labels
            assert source[item.example.index] == item.example.label
        # Classes with 30 in the seed's test inputs get none added.
        first = np.bincount(labels[:200], minlength=6)
        assert all(np.bincount(labels, minlength=6)[c] == first[c] for c in range(6) if first[c] >= 30)
    again = diagnosis_inputs("trec", 46, n_test=200, demonstration_rows=rows)
    assert again == inputs  # seeded


def test_diagnosis_inputs_refuse_a_class_that_cannot_reach_the_minimum(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    texts = [f"good {i}" for i in range(40)] + ["bad one", "bad two"]
    pd.DataFrame({"text": texts, "label": [1] * 40 + [0] * 2}).to_csv(train, index=False)
    texts = [f"fine {i}" for i in range(35)] + ["awful"]
    pd.DataFrame({"text": texts, "label": [1] * 35 + [0]}).to_csv(test, index=False)
    task = task_from_files(
        "tiny",
        "Review: {text}\nSentiment:{label}",
        [" Negative", " Positive"],
        ["neg", "pos"],
        train,
        test,
        data_dir=tmp_path / "data",
    )
    with pytest.raises(
        EmptyClassError,
        match=r"class 'neg' \(id 0\) of task 'tiny' has only 2 rows .*"
        r"DiagnoseConfig\(min_per_class=2\)",
    ):
        diagnosis_inputs(task, 1, n_test=None, demonstration_rows=[40])
    inputs = diagnosis_inputs(task, 1, n_test=None, min_per_class=2, demonstration_rows=[40])
    assert sorted((item.split, item.example.index) for item in inputs if item.example.label == 0) == [
        ("test", 35),
        ("train", 41),
    ]


def test_min_per_class_is_validated():
    from anchorlens.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="min_per_class must be at least 2"):
        DiagnoseConfig(min_per_class=1)


def test_mantel_p_is_exact_over_all_relabellings():
    generator = np.random.default_rng(0)
    true = generator.random((4, 4))
    true = true + true.T
    predicted = generator.random((4, 4))
    predicted = predicted + predicted.T
    test = mantel_test(predicted, true)
    first, second = np.triu_indices(4, k=1)
    observed = np.corrcoef(predicted[first, second], true[first, second])[0, 1]
    relabelled = [
        np.corrcoef(predicted[np.ix_(order, order)][first, second], true[first, second])[0, 1]
        for order in itertools.permutations(range(4))
    ]
    assert test["pearson"] == pytest.approx(observed)
    assert test["p_pearson"] == pytest.approx(np.mean(np.array(relabelled) >= observed - 1e-12))
    assert test["n_permutations"] == 24 and 0 < test["p_spearman"] <= 1


def test_mantel_p_is_small_for_planted_structure_and_uniform_for_noise():
    generator = np.random.default_rng(1)

    def symmetric(size):
        matrix = generator.random((size, size))
        return matrix + matrix.T

    true = symmetric(6)
    planted = mantel_test(true + 0.05 * symmetric(6), true)
    assert planted["p_pearson"] <= 2 / 720 and planted["p_spearman"] <= 2 / 720
    noise = np.array([mantel_test(symmetric(6), symmetric(6))["p_pearson"] for _ in range(200)])
    assert ((noise >= 0) & (noise <= 1)).all()
    assert 0.4 < noise.mean() < 0.6 and (noise < 0.05).mean() < 0.1


def test_mantel_beyond_eight_classes_draws_seeded_relabellings():
    generator = np.random.default_rng(2)
    true = generator.random((9, 9))
    true = true + true.T
    first = mantel_test(true + 0.01, true, n_permutations=499)
    assert first["n_permutations"] == 500 and first["p_pearson"] == pytest.approx(1 / 500)
    noise = generator.random((9, 9))
    noise = noise + noise.T
    assert mantel_test(noise, true, n_permutations=499) == mantel_test(noise, true, n_permutations=499)


def test_mantel_needs_three_usable_pairs():
    assert np.isnan(mantel_test(np.ones((2, 2)), np.ones((2, 2)))["p_pearson"])


def test_run_diagnose_rows_examples_and_summaries(gpt2_like, tmp_path):
    # min_per_class 12 keeps the run small and still needs both splits (TREC's test split has 9 ABBR rows).
    config = DiagnoseConfig(seeds=(1, 2), n_test=20, batch_size=8, layer=1, min_per_class=12)
    result = run_diagnose(gpt2_like, "trec", config, out=tmp_path, progress=False)
    saved = DiagnoseResult.from_folder(tmp_path)
    pd.testing.assert_frame_equal(saved.examples, result.examples)  # the split column survives the parts
    frame, examples = result.to_frame(), result.examples
    assert len(frame) == 2 * 36 and set(frame["layer"]) == {1}
    assert list(examples.columns) == [
        "task",
        "model",
        "seed",
        "example",
        "split",
        "gold",
        "prediction",
        *[f"p_{c}" for c in range(6)],
    ]
    probabilities = examples[[f"p_{c}" for c in range(6)]].to_numpy()
    assert np.allclose(probabilities.sum(1), 1) and (examples["prediction"] == probabilities.argmax(1)).all()
    for seed in (1, 2):
        mine = examples[examples["seed"] == seed]
        rows = frame[frame["seed"] == seed]
        assert (rows["n"] == len(mine)).all()
        counts = mine["gold"].value_counts()
        names = list(get_task("trec").class_names)
        count_of_class = {name: counts.get(index, 0) for index, name in enumerate(names)}
        assert (rows["n_a"] == rows["class_a"].map(count_of_class)).all()
        assert rows["n_a"].min() >= 12 and set(mine["split"]) == {"test", "train"}
        assert (mine.loc[mine["split"] == "train", "gold"] == 0).all()
        # The seed rows' true confusion is recomputable from the per-example rows.
        true = true_confusion(mine[[f"p_{c}" for c in range(6)]].to_numpy(), mine["gold"].to_numpy())
        matrix = rows.pivot(index="class_a", columns="class_b", values="true").reindex(index=names, columns=names)
        assert np.allclose(matrix.to_numpy(), true)
    summary = result.summary()
    assert set(summary.columns) >= {
        "pearson",
        "p_pearson",
        "spearman",
        "p_spearman",
        "n_permutations",
        "most_confused_predicted",
        "most_confused_true",
        "min_class_inputs",
    }
    assert summary["n_permutations"].tolist() == [720] and 0 < summary["p_pearson"].iloc[0] <= 1
    assert summary["min_class_inputs"].iloc[0] >= 12
    with_ci = result.summary_with_ci()
    assert list(with_ci.columns) == [
        "task",
        "model",
        "class_a",
        "class_b",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "n_seeds",
        "n_examples",
    ]
    assert len(with_ci) == 30 and set(with_ci["metric"]) == {"true"} and (with_ci["n_seeds"] == 2).all()
    _, true = result.matrices("trec")
    gold = examples["gold"].map(dict(enumerate(names)))
    for row in with_ci.itertuples():
        assert row.mean == pytest.approx(true.loc[row.class_a, row.class_b], abs=1e-12)
        assert row.ci_low <= row.mean + 1e-12 and row.mean <= row.ci_high + 1e-12
        assert row.n_examples == gold.isin([row.class_a, row.class_b]).sum()
    assert with_ci.equals(result.summary_with_ci())


def test_true_confusion_intervals_equal_a_loop_over_resamples():
    """Against roc_auc_score on each resample's repeated rows; a test row and a train row with the same index
    are different inputs."""
    generator = np.random.default_rng(5)
    frames = []
    for seed in (7, 8):
        gold = np.repeat([0, 1, 2], 8)
        logits = generator.normal(size=(24, 3)) + 1.5 * np.eye(3)[gold]
        probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        frame = pd.DataFrame(
            {
                "task": "trec",
                "model": "m",
                "seed": seed,
                "example": np.arange(24) % 12,
                "split": np.where(np.arange(24) < 12, "test", "train"),
                "gold": gold,
                "prediction": probabilities.argmax(1),
            }
        )
        for c in range(3):
            frame[f"p_{c}"] = probabilities[:, c]
        frames.append(frame)
    examples = pd.concat(frames, ignore_index=True)
    names = list(get_task("trec").class_names)
    matrices = {
        seed: true_confusion(part[["p_0", "p_1", "p_2"]].to_numpy(), part["gold"].to_numpy())
        for seed, part in examples.groupby("seed")
    }
    rows = [
        {
            "task": "trec",
            "model": "m",
            "seed": seed,
            "layer": 0,
            "class_a": names[a],
            "class_b": names[b],
            "predicted": 1.0,
            "true": matrix[a, b],
        }
        for seed, matrix in matrices.items()
        for a in range(3)
        for b in range(3)
    ]
    result = DiagnoseResult(pd.DataFrame(rows), DiagnoseConfig(), examples)
    n_resamples = 30
    summary = result.summary_with_ci(n_resamples=n_resamples).set_index(["class_a", "class_b"])
    assert (summary["n_examples"] == 32).all()
    units = examples.assign(unit=examples["split"] + ":" + examples["example"].astype(str))
    resamples, index_of = resamples_for(("trec", "m"), units, unit="unit", n_resamples=n_resamples)
    assert len(index_of) == 48
    for a, b in ((0, 1), (2, 0)):
        boot = np.zeros(n_resamples)
        for r in range(n_resamples):
            total = weight = 0.0
            for position, seed in enumerate(resamples.seeds):
                times = resamples.seed_draws[r, position]
                mine = units[(units["seed"] == seed) & units["gold"].isin([a, b])]
                counts = np.array([resamples.counts[r, index_of[(seed, u)]] for u in mine["unit"]]).astype(int)
                drawn = mine.iloc[np.repeat(np.arange(len(mine)), counts)]
                if not times or drawn["gold"].nunique() < 2:
                    continue
                score = drawn[f"p_{a}"] / drawn[f"p_{b}"]
                total += times * roc_auc_score(drawn["gold"] == a, score)
                weight += times
            boot[r] = total / weight
        row = summary.loc[(names[a], names[b])]
        low, high = seed_interval([matrices[seed][a, b] for seed in resamples.seeds], within_sd_of(boot))
        assert row["ci_low"] == pytest.approx(low, abs=1e-12) and row["ci_high"] == pytest.approx(high, abs=1e-12)
