"""Attention AUROC and R_l (SPEC §3) against hand-computed cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from anchorlens.experiments.auroc import (
    AurocConfig,
    AurocResult,
    attention_and_prediction,
    auroc_from_examples,
    cumulative_r,
    layer_auroc,
    resampled_layer_auroc,
    run_auroc,
    weighted_auc,
    with_r,
)
from anchorlens.experiments.common import per_head_rows, whole_layer_rows
from anchorlens.prompts import make_batch, task_prompts
from anchorlens.stats import resamples_for, seed_interval, within_sd_of


def test_binary_auroc_scores_attention_to_the_second_class():
    attention = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3], [0.2, 0.4]])
    assert layer_auroc(attention, np.array([0, 0, 1, 1])) == 1.0
    assert layer_auroc(attention, np.array([1, 1, 0, 0])) == 0.0


def test_multiclass_keeps_predicted_classes_and_renormalises():
    generator = np.random.default_rng(0)
    attention = generator.random((40, 4))
    predicted = generator.choice([0, 2, 3], size=40)  # class 1 never predicted: dropped
    kept = attention[:, [0, 2, 3]]
    kept = kept / kept.sum(1, keepdims=True)
    targets = np.searchsorted([0, 2, 3], predicted)
    assert layer_auroc(attention, predicted) == pytest.approx(roc_auc_score(targets, kept, multi_class="ovo"))


def test_a_single_predicted_class_leaves_auroc_undefined():
    assert np.isnan(layer_auroc(np.ones((5, 2)), np.zeros(5, dtype=int)))


def test_cumulative_r_by_hand():
    assert np.allclose(cumulative_r(np.array([0.5, 0.6, 0.8])), [0.0, 0.25, 1.0])
    assert np.allclose(cumulative_r(np.array([np.nan, 0.7, 0.7])), [0.0, 0.5, 1.0])


def test_r_comes_from_the_seed_averaged_curve():
    frame = pd.DataFrame(
        {"task": "t", "model": "m", "seed": [1, 1, 2, 2], "layer": [0, 1, 0, 1], "auroc": [0.6, 0.7, 0.8, 0.9]}
    )
    r = with_r(frame).set_index(["seed", "layer"])["R"]
    # Seed means 0.7 and 0.8 -> excess 0.2, 0.3 -> R 0.4, 1.0 on every seed's rows.
    assert r.loc[(1, 0)] == pytest.approx(0.4) and r.loc[(2, 0)] == pytest.approx(0.4)
    assert r.loc[(2, 1)] == pytest.approx(1.0)


def test_run_auroc_on_a_tiny_model(llama_like):
    result = run_auroc(llama_like, "trec", AurocConfig(seeds=(1, 2), n_test=12, batch_size=4), progress=False)
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["task", "model", "seed", "layer"]
    assert len(frame) == 2 * llama_like.cfg.n_layers
    valid = frame["auroc"].dropna()
    assert valid.between(0, 1).all()
    assert set(result.summary().columns) >= {"auroc_mean", "auroc_std", "R"}


def _repeated(counts):
    return np.repeat(np.arange(len(counts)), counts.astype(int))


def test_weighted_auc_equals_sklearn_on_repeated_rows():
    generator = np.random.default_rng(0)
    scores = generator.integers(0, 5, 40).astype(float)  # many ties
    positive = generator.random(40) < 0.4
    weights = generator.integers(0, 3, (25, 40)).astype(float)
    weights[0, positive] = 0  # no positive row drawn: undefined
    values = weighted_auc(scores, positive, weights)
    assert np.isnan(values[0])
    for row in range(1, 25):
        rows = _repeated(weights[row])
        assert values[row] == pytest.approx(roc_auc_score(positive[rows], scores[rows]), abs=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3, 6])
def test_resampled_auroc_equals_layer_auroc_on_the_drawn_rows(n_classes):
    """Kept classes, renormalisation and the one-vs-one average follow each resample's drawn inputs."""
    generator = np.random.default_rng(n_classes)
    attention = generator.random((60, n_classes))
    predicted = generator.integers(0, n_classes, 60)
    counts = generator.multinomial(60, np.full(60, 1 / 60), size=30).astype(float)
    counts[1, predicted == 1] = 0  # a class drops out of one resample
    counts[2, predicted != 0] = 0  # one class left: undefined
    values = resampled_layer_auroc(attention, predicted, counts)
    assert np.isnan(values[2])
    for row in range(30):
        rows = _repeated(counts[row])
        assert values[row] == pytest.approx(layer_auroc(attention[rows], predicted[rows]), abs=1e-12, nan_ok=True)


@pytest.mark.parametrize("n_classes", [2, 6])
def test_resampled_auroc_of_stacked_layers_is_each_layers_own_exactly(n_classes):
    """The summary passes every layer at once: each layer's row is, to the bit, what that layer gives alone
    (resamples keeping few classes included, where numpy's summation order follows the array's shape)."""
    generator = np.random.default_rng(1)
    attention = generator.random((30, 37, n_classes))  # [layer, example, class]
    predicted = generator.integers(0, n_classes, 37)
    counts = generator.multinomial(37, np.full(37, 1 / 37), size=300).astype(float)
    counts[1, predicted > 1] = 0  # two classes kept
    stacked = resampled_layer_auroc(attention, predicted, counts)
    assert stacked.shape == (30, 300)
    for layer in range(30):
        assert np.array_equal(
            stacked[layer], resampled_layer_auroc(attention[layer], predicted, counts), equal_nan=True
        )
    assert np.array_equal(
        weighted_auc(attention[..., 0], predicted == 0, counts)[3],
        weighted_auc(attention[3, :, 0], predicted == 0, counts),
        equal_nan=True,
    )


def test_per_example_rows_recompute_every_seed_auroc(llama_like):
    result = run_auroc(llama_like, "trec", AurocConfig(seeds=(1, 2), n_test=16, batch_size=4), progress=False)
    examples, layers = result.examples, llama_like.cfg.n_layers
    assert list(examples.columns) == [
        "task",
        "model",
        "seed",
        "example",
        "gold",
        "layer",
        "prediction",
        *[f"att_{c}" for c in range(6)],
    ]
    assert len(examples) == 2 * 16 * layers
    assert examples.groupby(["seed", "layer"])["example"].nunique().eq(16).all()
    assert (examples.groupby(["seed", "example"])["prediction"].nunique() == 1).all()
    recomputed = auroc_from_examples(examples).merge(result.frame, on=["task", "model", "seed", "layer"])
    assert len(recomputed) == 2 * layers
    assert np.allclose(recomputed["auroc_x"], recomputed["auroc_y"], equal_nan=True)
    classes_kept = examples.groupby("seed")["prediction"].nunique()
    assert (result.frame.set_index("seed")["classes_kept"].groupby("seed").first() == classes_kept).all()


def _examples(tasks=(("sst2", 2), ("trec", 6)), n_seeds=3, n_inputs=40, n_layers=5, seed=0, seed_rows=True):
    """Attention that tracks the prediction more with depth; sst2's rows leave att_2..att_5 empty."""
    generator = np.random.default_rng(seed)
    frames = []
    for task, n_classes in tasks:
        for s in range(n_seeds):
            predicted = generator.integers(0, n_classes, n_inputs)
            for layer in range(n_layers):
                attention = generator.random((n_inputs, n_classes)) + 0.4 * layer * np.eye(n_classes)[predicted]
                frame = pd.DataFrame(
                    {
                        "task": task,
                        "model": "m",
                        "seed": 10 + s,
                        "example": np.arange(n_inputs) * 3,
                        "gold": predicted,
                        "layer": layer,
                        "prediction": predicted,
                    }
                )
                for c in range(n_classes):
                    frame[f"att_{c}"] = attention[:, c]
                frames.append(frame)
    examples = pd.concat(frames, ignore_index=True)
    if not seed_rows:  # the summary needs only the examples
        return AurocResult(pd.DataFrame(), AurocConfig(), examples)
    return AurocResult.from_frame(auroc_from_examples(examples), AurocConfig(), examples)


def test_summary_with_ci_means_are_the_seed_rows_and_r_their_curve():
    result = _examples()
    summary = result.summary_with_ci()
    assert list(summary.columns) == [
        "task",
        "model",
        "layer",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "n_seeds",
        "n_examples",
    ]
    assert len(summary) == 2 * 5 * 3
    assert (summary["n_seeds"] == 3).all() and (summary["n_examples"] == 120).all()
    expected = result.summary().set_index(["task", "layer"])
    # excess: the seed-mean curve's cumulative excess over 0.5; R is its share of the last layer's.
    excess = summary[summary["metric"] == "excess"].set_index(["task", "layer"])["mean"]
    curve = expected["auroc_mean"] - 0.5
    assert np.allclose(excess.sort_index(), curve.groupby(level="task").cumsum().sort_index(), atol=1e-12)
    ratio = excess / excess.groupby(level="task").transform("last")
    assert np.allclose(ratio.sort_index(), expected["R"].sort_index(), atol=1e-12)
    for row in summary[summary["metric"] != "excess"].itertuples():
        wanted = expected.loc[(row.task, row.layer), "auroc_mean" if row.metric == "auroc" else "R"]
        assert row.mean == pytest.approx(wanted, abs=1e-12)
        assert row.ci_low <= row.mean + 1e-12 and row.mean <= row.ci_high + 1e-12
    deep = summary[(summary["metric"] == "auroc") & (summary["layer"] == 4)]
    assert (deep["ci_low"] > 0.5).all()  # planted: deep attention predicts the output
    assert summary.equals(result.summary_with_ci())  # seeded: identical on rerun


def test_summary_counts_only_the_seeds_whose_auroc_is_defined():
    """A seed on whose every input the model predicts one class has no AUROC: the summary's n_seeds and
    n_examples say what the mean rests on (SmolLM2 predicts one class on all of SST-2 at 4 of 5 seeds)."""
    result = _examples(tasks=(("sst2", 2),), n_seeds=3, n_inputs=40, n_layers=3, seed=5, seed_rows=False)
    examples = result.examples.copy()
    examples.loc[examples["seed"] == 11, "prediction"] = 1  # one seed: a single predicted class
    one_class = AurocResult(pd.DataFrame(), AurocConfig(), examples)
    summary = one_class.summary_with_ci(n_resamples=50)
    assert (summary["n_seeds"] == 2).all() and (summary["n_examples"] == 80).all()
    seed_rows = auroc_from_examples(examples)
    assert seed_rows.loc[seed_rows["seed"] == 11, "auroc"].isna().all()
    means = seed_rows.groupby("layer")["auroc"].mean()  # NaN skipped: the two defined seeds
    auroc_rows = summary[summary["metric"] == "auroc"].set_index("layer")["mean"]
    assert np.allclose(auroc_rows.sort_index().to_numpy(), means.sort_index().to_numpy())


def test_summary_intervals_equal_a_loop_over_resamples():
    """The seed-level interval of each seed's AUROC (R_l through its linearisation over seeds), floored by the
    spread of layer_auroc (sklearn) on each resample's repeated rows."""
    result = _examples(tasks=(("agnews", 4),), n_seeds=2, n_inputs=20, n_layers=2, seed=3)
    n_resamples = 30
    summary = result.summary_with_ci(n_resamples=n_resamples).set_index(["layer", "metric"])
    examples = result.examples
    resamples, index_of = resamples_for(("agnews", "m"), examples, n_resamples=n_resamples)
    curves = np.zeros((n_resamples, 2))
    for r in range(n_resamples):
        for layer in range(2):
            total = weight = 0.0
            for position, seed in enumerate(resamples.seeds):
                times = resamples.seed_draws[r, position]
                mine = examples[(examples["seed"] == seed) & (examples["layer"] == layer)]
                counts = np.array([resamples.counts[r, index_of[(seed, e)]] for e in mine["example"]])
                rows = _repeated(counts)
                attention = mine[[f"att_{c}" for c in range(4)]].to_numpy()
                value = layer_auroc(attention[rows], mine["prediction"].to_numpy()[rows])
                if times and np.isfinite(value):
                    total += times * value
                    weight += times
            curves[r, layer] = total / weight
    r_curves = cumulative_r(curves)
    excess = np.cumsum(curves - 0.5, axis=1)
    seed_curves = np.array(
        [
            [
                layer_auroc(
                    mine.loc[mine["layer"] == layer, [f"att_{c}" for c in range(4)]].to_numpy(),
                    mine.loc[mine["layer"] == layer, "prediction"].to_numpy(),
                )
                for layer in range(2)
            ]
            for _, mine in examples.groupby("seed")
        ]
    )
    seed_excess = np.cumsum(seed_curves - 0.5, axis=1)
    mean_excess = seed_excess.mean(0)
    r = mean_excess / mean_excess[-1]
    seed_r = r + (seed_excess - r * seed_excess[:, -1:]) / mean_excess[-1]  # the ratio's linearisation
    assert np.allclose(seed_r.mean(0), r)
    for layer in range(2):
        for metric, per_seed, values in (
            ("auroc", seed_curves[:, layer], curves[:, layer]),
            ("R", seed_r[:, layer], r_curves[:, layer]),
            ("excess", seed_excess[:, layer], excess[:, layer]),
        ):
            row = summary.loc[(layer, metric)]
            low, high = seed_interval(per_seed, within_sd_of(values))
            assert row["ci_low"] == pytest.approx(low, abs=1e-12) and row["ci_high"] == pytest.approx(high, abs=1e-12)


def test_summary_of_four_tasks_30_layers_5_seeds_200_inputs():
    """The size of a paper run: every task and layer gets its three metrics (its time is a benchmark's matter,
    not an assert's)."""
    result = _examples(
        tasks=(("sst2", 2), ("agnews", 4), ("trec", 6), ("emoc", 4)),
        n_seeds=5,
        n_inputs=200,
        n_layers=30,
        seed=4,
        seed_rows=False,
    )
    summary = result.summary_with_ci()
    assert len(summary) == 4 * 30 * 3 and summary["mean"].notna().all()
    assert set(summary["metric"]) == {"auroc", "R", "excess"}


# ------------------------------------------------------------------------------------------------- per head


def test_per_head_attention_sums_to_the_layer_attention_and_matches_the_cache(llama_like, smol_tokenizer):
    """A head's A_{l,h}(q, p_c) read from the run's cache; summed over heads it is the paper's A_l(q, p_c)."""
    _, prompts = task_prompts(smol_tokenizer, "trec", 1, n_test=3, prepend_bos=False)
    batch = make_batch(prompts)
    per_head, predictions = attention_and_prediction(llama_like, batch, per_head=True)
    layer, layer_predictions = attention_and_prediction(llama_like, batch)
    assert per_head.shape == (3, llama_like.cfg.n_layers, llama_like.cfg.n_heads, 6)
    assert torch.allclose(per_head.sum(2), layer, atol=1e-6) and torch.equal(predictions, layer_predictions)
    with torch.no_grad():
        _, cache = llama_like.run_with_cache(batch.tokens)
    for row, prompt in enumerate(prompts):
        for index in range(llama_like.cfg.n_layers):
            pattern = cache[f"blocks.{index}.attn.hook_pattern"][row, :, prompt.target_position]  # [head, key]
            for label, positions in enumerate(prompt.label_positions):
                expected = pattern[:, list(positions)].sum(-1)
                assert torch.allclose(per_head[row, index, :, label], expected, atol=1e-6)


def test_per_head_is_left_out_of_the_signature_at_its_default():
    """The committed auroc parts were keyed by this exact signature (docs/results/*/manifest.json)."""
    assert AurocConfig(model="smollm2-135m").signature() == {
        "model": "smollm2-135m",
        "n_test": 200,
        "shots_per_class": 1,
    }
    assert AurocConfig(model="smollm2-135m", per_head=True).signature()["per_head"] is True
    for model in ("smollm2-135m", "gemma-3-270m"):
        manifest = Path(__file__).parents[3] / "docs" / "results" / model / "manifest.json"
        if manifest.is_file():
            committed = json.loads(manifest.read_text())["experiments"].get("auroc")
            if committed is not None:
                assert AurocConfig.from_signature(committed).signature() == committed


def test_run_with_per_head_scores_each_head_and_keeps_the_layer_rows(tmp_path, llama_like):
    config = AurocConfig(seeds=(1, 2), n_test=12, batch_size=4)
    plain = run_auroc(llama_like, "trec", config, progress=False)
    heads_config = AurocConfig(seeds=(1, 2), n_test=12, batch_size=4, per_head=True)
    result = run_auroc(llama_like, "trec", heads_config, out=tmp_path, progress=False)
    n_layers, n_heads = llama_like.cfg.n_layers, llama_like.cfg.n_heads
    frame = result.to_frame()
    assert list(frame.columns[:5]) == ["task", "model", "seed", "layer", "head"]
    pd.testing.assert_frame_equal(whole_layer_rows(frame), plain.to_frame(), rtol=1e-6)
    pd.testing.assert_frame_equal(whole_layer_rows(result.examples), plain.examples, rtol=1e-6)
    pd.testing.assert_frame_equal(result.summary(), plain.summary(), rtol=1e-6)
    heads = per_head_rows(frame)
    assert len(heads) == 2 * n_layers * n_heads and heads["R"].isna().all()
    assert heads["auroc"].dropna().between(0, 1).all() and heads["auroc"].notna().any()
    # Every head's AUROC is recomputed from its per-example rows, which sum over heads to the layer's attention.
    recomputed = per_head_rows(auroc_from_examples(result.examples))
    merged = recomputed.merge(heads, on=["task", "model", "seed", "layer", "head"])
    assert len(merged) == len(heads)
    assert np.allclose(merged["auroc_x"], merged["auroc_y"], equal_nan=True)
    head_examples = per_head_rows(result.examples)
    attention = [f"att_{c}" for c in range(6)]
    summed = head_examples.groupby(["seed", "example", "layer"])[attention].sum()
    layer_rows = whole_layer_rows(result.examples).set_index(["seed", "example", "layer"])[attention]
    assert np.allclose(summed.loc[layer_rows.index].to_numpy(), layer_rows.to_numpy(), atol=1e-6)
    # The summary: whole layers with R as before, heads with an AUROC whose mean is the seed rows' mean.
    summary = result.summary_with_ci()
    head_summary = per_head_rows(summary)
    assert set(head_summary["metric"]) == {"auroc"} and len(head_summary) == n_layers * n_heads
    seed_mean = heads.groupby(["layer", "head"])["auroc"].mean()
    means = head_summary.set_index(["layer", "head"])["mean"].loc[seed_mean.index]
    assert np.allclose(means, seed_mean, equal_nan=True)
    whole = whole_layer_rows(summary)
    assert set(whole["metric"]) == {"auroc", "R", "excess"}
    again = run_auroc(llama_like, "trec", heads_config, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.examples, result.examples)


def test_per_head_batched_equals_batch_size_one(llama_like):
    one = run_auroc(llama_like, "sst2", AurocConfig(seeds=(3,), n_test=6, batch_size=1, per_head=True), progress=False)
    six = run_auroc(llama_like, "sst2", AurocConfig(seeds=(3,), n_test=6, batch_size=6, per_head=True), progress=False)
    pd.testing.assert_frame_equal(one.examples, six.examples, rtol=1e-5, atol=1e-7)
    pd.testing.assert_frame_equal(one.to_frame(), six.to_frame(), rtol=1e-5, atol=1e-7)
