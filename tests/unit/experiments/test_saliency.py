"""Saliency flow: the index sets and normalisers of SPEC §1, and the fast path against plain autograd."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest
import torch

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import per_head_rows, whole_layer_rows
from anchorlens.experiments.saliency import (
    REGIONS,
    SaliencyConfig,
    SaliencyResult,
    flow_differences,
    fresh_demonstration_prompts,
    region_weights,
    run_saliency,
    saliency_by_head,
    saliency_of_batch,
)
from anchorlens.forward import run_to_target
from anchorlens.hooks import SaliencyRecorder, frozen_parameters, pattern_hook_name
from anchorlens.prompts import Role, build_prompt, label_logits, label_loss, make_batch, prompt_settings
from anchorlens.sampling import sample_test_set
from anchorlens.stats import resamples_for, seed_interval, within_sd_of
from anchorlens.tasks import get_task, load_split


@pytest.fixture
def batch(smol_tokenizer):
    demos = [("a dull , lifeless film ", 0), ("warm and funny ", 1), ("a mess ", 0)]
    prompts = [
        build_prompt(smol_tokenizer, "sst2", demos, text, label, prepend_bos=False)
        for text, label in [("the best film of the year ", 1), ("tedious ", 0)]
    ]
    return make_batch(prompts)


def spec_formula(saliency: np.ndarray, label_positions: list[int], q: int) -> tuple[float, float, float]:
    """SPEC §1 written out with loops, diagonal zeroed."""
    saliency = saliency.copy()
    np.fill_diagonal(saliency, 0)
    wp = sum(saliency[p, j] for p in label_positions for j in range(p))
    pq = sum(saliency[q, p] for p in label_positions)
    below = sum(saliency[i, j] for i in range(q + 1) for j in range(i))
    n_pairs = q * (q + 1) / 2
    return (
        wp / sum(label_positions),
        pq / len(label_positions),
        (below - wp - pq) / (n_pairs - sum(label_positions) - len(label_positions)),
    )


def test_region_weights_reproduce_the_spec_formula(batch):
    weights = region_weights(batch)
    generator = np.random.default_rng(0)
    for row, prompt in enumerate(batch.prompts):
        saliency = np.tril(generator.random((batch.seq_len, batch.seq_len)))  # causal: nothing above the diagonal
        fast = (torch.from_numpy(saliency).float()[None] * weights[row]).sum((-1, -2)).double().numpy()
        expected = spec_formula(saliency, list(prompt.demonstration_label_positions), prompt.target_position)
        assert np.allclose(fast, expected, rtol=1e-5)


def test_exclude_bos_leaves_the_bos_column_out_of_s_wp_and_s_ww(smol_tokenizer):
    """With a BOS token (Gemma-3) S_wp and S_ww include its key column unless `exclude_bos`: then they are the
    means over the pairs (i, j) with j ≥ 1, as on a model without BOS; S_pq is the same either way."""
    demos = [("a dull , lifeless film ", 0), ("warm and funny ", 1)]
    prompt = build_prompt(smol_tokenizer, "sst2", demos, "the best film of the year ", 1, prepend_bos=True)
    batch = make_batch([prompt])
    assert prompt.positions_with(Role.BOS) == (0,)
    saliency = np.tril(np.random.default_rng(1).random((batch.seq_len, batch.seq_len)), -1)
    saliency[:, 0] += 5.0  # a heavy attention sink on BOS
    flows = {}
    for exclude in (False, True):
        weights = region_weights(batch, exclude_bos=exclude)[0]
        flows[exclude] = (torch.from_numpy(saliency).float()[None] * weights).sum((-1, -2)).double().numpy()
    labels, q = list(prompt.demonstration_label_positions), prompt.target_position
    wp = np.mean([saliency[p, j] for p in labels for j in range(1, p)])
    ww_pairs = [(i, j) for i in range(q + 1) for j in range(1, i) if not (i in labels or (i == q and j in labels))]
    ww = np.mean([saliency[i, j] for i, j in ww_pairs])
    assert np.allclose(flows[True], [wp, np.mean(saliency[q, labels]), ww], rtol=1e-5)
    assert flows[False][1] == pytest.approx(flows[True][1]) and flows[False][0] > flows[True][0] + 0.1  # the sink
    assert SaliencyConfig().exclude_bos is False  # the stated default: the BOS column is kept
    assert "exclude_bos" not in SaliencyConfig().signature()  # a default run's manifest is unchanged


@pytest.mark.parametrize("model_fixture", ["gpt2_like", "llama_like"])
def test_fast_path_equals_autograd_reference(request, batch, model_fixture):
    model = request.getfixturevalue(model_fixture)
    fast = saliency_of_batch(model, batch)  # [b, layer, 3]
    for row, prompt in enumerate(batch.prompts):
        tokens = torch.tensor([prompt.token_ids])
        patterns = {}

        def keep(pattern, hook, patterns=patterns):
            pattern.retain_grad()
            patterns[hook.name] = pattern

        model.zero_grad(set_to_none=True)
        logits = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), keep)])
        label_loss(logits, make_batch([prompt])).backward()
        for layer in range(model.cfg.n_layers):
            pattern = patterns[pattern_hook_name(layer)]
            saliency = (pattern.detach() * pattern.grad)[0].sum(0).abs().numpy()
            expected = spec_formula(saliency, list(prompt.demonstration_label_positions), prompt.target_position)
            assert np.allclose(fast[row, layer].double().numpy(), expected, rtol=1e-4, atol=1e-10)
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("model_fixture", ["gpt2_like", "llama_like"])
def test_s_wp_is_zero_in_the_last_layer_by_construction(request, batch, model_fixture):
    """In the last layer only the target's attention row reaches the loss, so the label words' rows (S_wp) get
    no gradient there while S_pq and S_ww do: analyses/claims.py leaves S_wp out of its last-layer checks."""
    model = request.getfixturevalue(model_fixture)
    flow = saliency_of_batch(model, batch)  # [b, layer, region]
    last = flow[:, -1]
    s_wp, s_pq, s_ww = (last[:, REGIONS.index(region)] for region in ("S_wp", "S_pq", "S_ww"))
    assert torch.equal(s_wp, torch.zeros_like(s_wp))
    assert (s_pq > 0).all() and (s_ww > 0).all()
    assert (flow[:, :-1, REGIONS.index("S_wp")] > 0).all()  # every earlier layer's label rows do reach the loss
    model.zero_grad(set_to_none=True)


def test_a_batch_leaves_no_attention_pattern_alive(gpt2_like, batch):
    """Everything a batch's saliency pass builds is freed once the next batch has run: a gradient hook closing
    over its own pattern made a cycle the collector cannot see, and each batch's whole graph leaked (16.8 GB on
    200 TREC prompts with SmolLM2). (A TransformerBridge keeps its last pattern per layer until its next forward
    pass, so a batch's patterns are checked after a second batch, on both classes.)"""
    patterns = []

    def watch(pattern, hook):
        patterns.append(weakref.ref(pattern))

    def one_batch(record: bool) -> None:
        recorder = SaliencyRecorder(gpt2_like, region_weights(batch))
        hooks = recorder.hooks()
        if record:
            hooks += [(pattern_hook_name(layer), watch) for layer in range(gpt2_like.cfg.n_layers)]
        with frozen_parameters(gpt2_like):
            label_loss(run_to_target(gpt2_like, batch, hooks), batch, reduction="sum").backward()
        assert recorder.values.shape == (batch.size, gpt2_like.cfg.n_layers, 3)

    one_batch(record=True)
    one_batch(record=False)
    gc.collect()
    assert len(patterns) == gpt2_like.cfg.n_layers and all(ref() is None for ref in patterns)


def test_fresh_demonstrations_follow_the_papers_draw(smol_tokenizer):
    task = get_task("sst2")
    prompts = fresh_demonstration_prompts(smol_tokenizer, task, 42, n_test=3, shots_per_class=1, prepend_bos=False)
    labels = np.asarray(load_split(task, "train")["label"])
    texts = load_split(task, "train")["text"]
    generator = np.random.RandomState(42)
    order = np.random.default_rng(42).permutation(2)
    for prompt in prompts:
        drawn = [int(generator.choice(np.flatnonzero(labels == c), 1)[0]) for c in range(2)]
        expected = [drawn[i] for i in order]
        assert list(prompt.demonstration_labels) == [int(labels[i]) for i in expected]
        for row in expected:
            assert texts[row] in prompt.text
    assert len({p.text.split("\nReview:")[0] for p in prompts}) == 3  # fresh demonstrations per input


def test_run_saves_each_seed_and_resumes(tmp_path, gpt2_like, monkeypatch):
    config = SaliencyConfig(seeds=(1, 2), n_test=3, batch_size=2)
    first = run_saliency(gpt2_like, "sst2", config, out=tmp_path, progress=False)
    frame = first.to_frame()
    assert sorted(frame["seed"].unique()) == [1, 2] and len(frame) == 2 * gpt2_like.cfg.n_layers
    assert np.allclose(frame[["S_wp", "S_pq", "S_ww"]].sum(axis=1), 1)
    raw = frame[["S_wp_raw", "S_pq_raw", "S_ww_raw"]].to_numpy()
    assert np.allclose(frame[["S_wp", "S_pq", "S_ww"]].to_numpy(), raw / raw.sum(1, keepdims=True))
    assert (tmp_path / "parts" / "saliency" / "sst2-seed1.csv").is_file()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished seed was computed again")

    monkeypatch.setattr("anchorlens.experiments.saliency.saliency_and_prediction", must_not_run)
    again = run_saliency(gpt2_like, "sst2", config, out=tmp_path, progress=False)
    assert again.to_frame().equals(frame)
    assert len(first.examples) == 2 * 3 * gpt2_like.cfg.n_layers
    pd.testing.assert_frame_equal(again.examples, first.examples)  # the per-example rows are saved with each part


def test_depth_summary_takes_thirds_of_each_models_own_depth():
    """Shallow = first third, deep = last third of each model's layers, also when models of different depth
    share one result (a 6-layer and a 3-layer model here; S_wp is the layer index, so means are checkable)."""
    rows = [
        {
            "task": "sst2",
            "model": model,
            "seed": 1,
            "layer": layer,
            "S_wp": float(layer),
            "S_pq": 0.0,
            "S_ww": 0.0,
            "n": 4,
        }
        for model, layers in (("deep6", 6), ("short3", 3))
        for layer in range(layers)
    ]
    table = SaliencyResult.from_frame(pd.DataFrame(rows)).depth_summary().set_index(["model", "depth"])["S_wp"]
    assert table.to_dict() == {
        ("deep6", "deep"): 4.5,
        ("deep6", "shallow"): 0.5,
        ("short3", "deep"): 2.0,
        ("short3", "shallow"): 0.0,
    }


def test_fresh_demonstration_prompts_know_their_test_row(smol_tokenizer):
    """Each prompt carries its query's test row index: per-example rows and keyed draws need it (was None)."""
    prompts = fresh_demonstration_prompts(smol_tokenizer, "sst2", 7, n_test=4, shots_per_class=1, prepend_bos=False)
    expected = sample_test_set("sst2", 7, n_test=4)
    assert [prompt.example_index for prompt in prompts] == [example.index for example in expected]
    assert [prompt.query_label for prompt in prompts] == [example.label for example in expected]


def test_per_example_rows_and_their_means_are_the_seed_rows(gpt2_like):
    config = SaliencyConfig(seeds=(3, 4), n_test=5, batch_size=2)
    result = run_saliency(gpt2_like, "sst2", config, progress=False)
    examples, layers = result.examples, gpt2_like.cfg.n_layers
    assert list(examples.columns) == ["task", "model", "seed", "example", "gold", "layer", "prediction", *REGIONS]
    assert len(examples) == 2 * 5 * layers
    assert examples.groupby(["seed", "layer"])["example"].nunique().eq(5).all()
    for seed in (3, 4):
        tested = {example.index: example.label for example in sample_test_set("sst2", seed, n_test=5)}
        mine = examples[examples["seed"] == seed]
        assert set(mine["example"]) == set(tested)
        assert (mine["gold"] == mine["example"].map(tested)).all()
    # The un-normalised per-prompt values average to the seed rows' raw values, which normalise to the S columns.
    raw = examples.groupby(["task", "model", "seed", "layer"], as_index=False)[list(REGIONS)].mean()
    merged = result.frame.merge(raw, on=["task", "model", "seed", "layer"], suffixes=("", "_mean"))
    assert len(merged) == len(result.frame) == 2 * layers
    for region in REGIONS:
        assert np.allclose(merged[f"{region}_raw"], merged[f"{region}_mean"], rtol=1e-9, atol=0)
    # The prediction is the model's own argmax over the label logits of that prompt alone.
    prompts = fresh_demonstration_prompts(
        gpt2_like.tokenizer, "sst2", 3, n_test=5, shots_per_class=1, **prompt_settings(gpt2_like)
    )
    with torch.no_grad():
        alone = {
            p.example_index: int(label_logits(run_to_target(gpt2_like, make_batch([p])), make_batch([p])).argmax())
            for p in prompts
        }
    first_layer = examples[(examples["seed"] == 3) & (examples["layer"] == 0)]
    assert dict(zip(first_layer["example"], first_layer["prediction"])) == alone
    assert (examples.groupby(["seed", "example"])["prediction"].nunique() == 1).all()


def _examples(n_seeds=3, n_inputs=12, n_layers=4, seed=0):
    """Per-example rows whose shares differ between inputs, so normalising before or after the mean differs."""
    generator = np.random.default_rng(seed)
    rows = []
    for s in range(n_seeds):
        for example in range(n_inputs):
            scale = generator.choice([0.1, 10.0])
            for layer in range(n_layers):
                values = generator.gamma(2.0, size=3) * scale * np.array([1 + layer, 1, 3 - 0.5 * layer])
                rows.append(
                    {
                        "task": "sst2",
                        "model": "m",
                        "seed": 40 + s,
                        "example": 100 + example,
                        "gold": 0,
                        "layer": layer,
                        "prediction": 0,
                        **dict(zip(REGIONS, values)),
                    }
                )
    return pd.DataFrame(rows)


def _seed_rows(examples):
    raw = examples.groupby(["task", "model", "seed", "layer"], as_index=False)[list(REGIONS)].mean()
    total = raw[list(REGIONS)].sum(axis=1)
    for region in REGIONS:
        raw[region] = raw[region] / total
    return raw


def test_summary_with_ci_is_mean_then_normalise_then_seed_mean():
    examples = _examples()
    result = SaliencyResult(_seed_rows(examples), SaliencyConfig(), examples)
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
    assert len(summary) == 4 * 3 and set(summary["metric"]) == set(REGIONS)
    assert (summary["n_seeds"] == 3).all() and (summary["n_examples"] == 36).all()
    expected = result.frame.groupby(["layer"])[list(REGIONS)].mean()
    for row in summary.itertuples():
        assert row.mean == pytest.approx(expected.loc[row.layer, row.metric], rel=1e-12)
        assert row.ci_low <= row.mean <= row.ci_high
    # Per layer the three means sum to 1, and they are not the mean of per-input shares.
    assert np.allclose(summary.groupby("layer")["mean"].sum(), 1)
    per_input = examples[list(REGIONS)].div(examples[list(REGIONS)].sum(axis=1), axis=0)
    naive = per_input.assign(layer=examples["layer"]).groupby("layer").mean()
    assert not np.allclose(naive.to_numpy(), expected.to_numpy(), atol=1e-3)
    assert summary.equals(result.summary_with_ci())  # seeded: identical on rerun


def _looped_bootstrap(examples, n_resamples):
    """The Fig. 3 statistic recomputed resample by resample on the draws of `resamples_for`: [resample, layer, 3]."""
    n_layers = examples["layer"].nunique()
    resamples, index_of = resamples_for(("sst2", "m"), examples, n_resamples=n_resamples)
    boot = np.zeros((n_resamples, n_layers, 3))
    for r in range(n_resamples):
        total, weight = np.zeros((n_layers, 3)), 0
        for position, seed in enumerate(resamples.seeds):
            times = resamples.seed_draws[r, position]
            if not times:
                continue
            mine = examples[examples["seed"] == seed]
            counts = np.array([resamples.counts[r, index_of[(seed, e)]] for e in mine["example"]])
            means = (
                mine[list(REGIONS)].mul(counts, axis=0).groupby(mine["layer"]).sum()
                / mine.assign(c=counts).groupby("layer")["c"].sum().to_numpy()[:, None]
            ).to_numpy()
            total += times * means / means.sum(1, keepdims=True)
            weight += times
        boot[r] = total / weight
    return boot


def _seed_points(examples):
    """Per seed, the Fig. 3 statistic on every input once: [seed, layer, 3]."""
    points = []
    for _, mine in examples.groupby("seed"):
        means = mine.groupby("layer")[list(REGIONS)].mean().to_numpy()
        points.append(means / means.sum(1, keepdims=True))
    return np.array(points)


def test_summary_intervals_equal_a_loop_over_resamples():
    """The seed-level interval of the per-seed statistic, floored by the spread of the statistic recomputed
    resample by resample on the same draws of each seed's inputs."""
    examples = _examples(n_seeds=2, n_inputs=6, n_layers=2, seed=1)
    result = SaliencyResult(_seed_rows(examples), SaliencyConfig(), examples)
    n_resamples = 40
    summary = result.summary_with_ci(n_resamples=n_resamples)
    boot, points = _looped_bootstrap(examples, n_resamples), _seed_points(examples)
    for row in summary.itertuples():
        region = REGIONS.index(row.metric)
        low, high = seed_interval(points[:, row.layer, region], within_sd_of(boot[:, row.layer, region]))
        assert row.ci_low == pytest.approx(low, rel=1e-9) and row.ci_high == pytest.approx(high, rel=1e-9)


def test_flow_differences_are_taken_on_the_summarys_own_resamples():
    examples = _examples(n_seeds=2, n_inputs=6, n_layers=2, seed=1)
    result = SaliencyResult(_seed_rows(examples), SaliencyConfig(), examples)
    n_resamples = 40
    differences = result.differences_with_ci(n_resamples=n_resamples)
    assert set(differences["metric"]) == {"S_wp - S_pq", "S_wp - S_ww", "S_pq - S_ww"}
    assert len(differences) == 3 * 2 and (differences["n_seeds"] == 2).all()
    means = result.summary_with_ci(n_resamples=n_resamples).set_index(["layer", "metric"])["mean"]
    boot, points = _looped_bootstrap(examples, n_resamples), _seed_points(examples)
    for row in differences.itertuples():
        a, b = row.metric.split(" - ")
        assert row.mean == pytest.approx(means[(row.layer, a)] - means[(row.layer, b)], abs=1e-12)
        i, j = REGIONS.index(a), REGIONS.index(b)
        low, high = seed_interval(
            points[:, row.layer, i] - points[:, row.layer, j],
            within_sd_of(boot[:, row.layer, i] - boot[:, row.layer, j]),
        )
        assert row.ci_low == pytest.approx(low, rel=1e-9) and row.ci_high == pytest.approx(high, rel=1e-9)
    with pytest.raises(ValueError, match="unknown saliency flows"):
        flow_differences(examples, [("S_wp", "S_qq")])


def test_a_difference_is_clear_where_seeds_move_both_flows():
    """Each seed's demonstrations set S_ww, which moves both normalised shares of S_wp and S_pq alike: their
    own intervals overlap, while S_wp − S_pq is positive on every input and its interval lies above 0."""
    generator = np.random.default_rng(3)
    rows = []
    for s, s_ww in enumerate([2.0, 3.0, 4.0]):
        for example in range(20):
            s_pq = generator.uniform(0.9, 1.1)
            values = {"S_wp": s_pq + 0.15, "S_pq": s_pq, "S_ww": s_ww * generator.uniform(0.95, 1.05)}
            rows.append({"task": "sst2", "model": "m", "seed": s, "example": example, "layer": 0, **values})
    examples = pd.DataFrame(rows)
    summary = SaliencyResult(_seed_rows(examples), SaliencyConfig(), examples).summary_with_ci()
    wp, pq = (summary.set_index("metric").loc[name] for name in ("S_wp", "S_pq"))
    assert wp.ci_low < pq.ci_high  # apart, the two intervals overlap
    difference = flow_differences(examples, [("S_wp", "S_pq")]).iloc[0]
    assert difference["mean"] == pytest.approx(wp["mean"] - pq["mean"]) and difference["ci_low"] > 0


def test_flow_differences_leave_out_per_head_rows():
    examples = _examples(n_seeds=2, n_inputs=4, n_layers=2)
    heads = examples.assign(head=1, S_wp=examples["S_wp"] * 50)
    with_heads = pd.concat([examples.assign(head=pd.NA), heads], ignore_index=True)
    assert flow_differences(with_heads, n_resamples=20).equals(flow_differences(examples, n_resamples=20))


# ------------------------------------------------------------------------------------------------- per head


def per_head_reference(model, prompt):
    """Plain autograd on one prompt, per head: I_{l,h} = |A_h ⊙ ∂L/∂A_h| reduced with the SPEC §1 loops."""
    tokens = torch.tensor([prompt.token_ids])
    patterns = {}

    def keep(pattern, hook):
        pattern.retain_grad()
        patterns[hook.name] = pattern

    model.zero_grad(set_to_none=True)
    logits = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), keep)])
    label_loss(logits, make_batch([prompt])).backward()
    out = np.zeros((model.cfg.n_layers, model.cfg.n_heads, 3))
    for layer in range(model.cfg.n_layers):
        pattern = patterns[pattern_hook_name(layer)]
        for head in range(model.cfg.n_heads):
            saliency = (pattern.detach() * pattern.grad)[0, head].abs().numpy()
            out[layer, head] = spec_formula(
                saliency, list(prompt.demonstration_label_positions), prompt.target_position
            )
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("model_fixture", ["gpt2_like", "llama_like"])
def test_per_head_saliency_equals_autograd_reference_per_head(request, batch, model_fixture):
    """Each head's S against a hand-written autograd reference of that head alone (llama_like: grouped-query
    attention, whose pattern still has one map per query head)."""
    model = request.getfixturevalue(model_fixture)
    layer_values, head_values, _ = saliency_by_head(model, batch)
    assert head_values.shape == (batch.size, model.cfg.n_layers, model.cfg.n_heads, 3)
    assert head_values.abs().sum() > 0
    for row, prompt in enumerate(batch.prompts):
        expected = per_head_reference(model, prompt)
        assert np.allclose(head_values[row].double().numpy(), expected, rtol=1e-4, atol=1e-10)
    # The whole-layer values of the same pass are the paper's, as without per_head.
    assert torch.allclose(layer_values, saliency_of_batch(model, batch), rtol=1e-5, atol=1e-10)


def test_per_head_values_sum_to_the_abs_per_head_layer_values_not_the_papers(gpt2_like, batch):
    """Σ_h |A_h ⊙ ∂L/∂A_h| is the abs_per_head layer value exactly; the paper's |Σ_h A_h ⊙ ∂L/∂A_h| is smaller
    wherever heads' terms have opposite signs, so summed heads do not reproduce it."""
    _, head_values, _ = saliency_by_head(gpt2_like, batch)
    summed = head_values.sum(2)
    assert torch.allclose(summed, saliency_of_batch(gpt2_like, batch, abs_per_head=True), rtol=1e-5, atol=1e-10)
    paper = saliency_of_batch(gpt2_like, batch)
    assert (paper <= summed * (1 + 1e-5) + 1e-12).all()  # triangle inequality
    assert not torch.allclose(paper, summed, rtol=1e-3)


def test_per_head_saliency_batched_equals_batch_size_one(llama_like, batch):
    _, batched, predictions = saliency_by_head(llama_like, batch)
    for row, prompt in enumerate(batch.prompts):
        _, alone, prediction = saliency_by_head(llama_like, make_batch([prompt]))
        assert torch.allclose(batched[row], alone[0], rtol=1e-4, atol=1e-9)
        assert int(predictions[row]) == int(prediction[0])


def test_per_head_is_left_out_of_the_signature_at_its_default():
    """Committed saliency parts were keyed by this exact signature: a new field at its default must not change it."""
    assert SaliencyConfig(model="smollm2-135m").signature() == {
        "model": "smollm2-135m",
        "n_test": 200,
        "shots_per_class": 1,
        "abs_per_head": False,
    }
    assert SaliencyConfig(model="smollm2-135m", per_head=True).signature()["per_head"] is True


def test_run_with_per_head_adds_head_rows_and_keeps_the_layer_rows(tmp_path, gpt2_like):
    config = SaliencyConfig(seeds=(1, 2), n_test=3, batch_size=2)
    plain = run_saliency(gpt2_like, "sst2", config, progress=False)
    heads_config = SaliencyConfig(seeds=(1, 2), n_test=3, batch_size=2, per_head=True)
    result = run_saliency(gpt2_like, "sst2", heads_config, out=tmp_path, progress=False)
    n_layers, n_heads = gpt2_like.cfg.n_layers, gpt2_like.cfg.n_heads
    frame = result.to_frame()
    assert list(frame.columns[:5]) == ["task", "model", "seed", "layer", "head"]
    # The whole-layer rows are those of a run without per_head.
    pd.testing.assert_frame_equal(whole_layer_rows(frame), plain.to_frame(), rtol=1e-6)
    pd.testing.assert_frame_equal(whole_layer_rows(result.examples), plain.examples, rtol=1e-6)
    pd.testing.assert_frame_equal(result.summary(), plain.summary(), rtol=1e-6)
    heads = per_head_rows(frame)
    assert len(heads) == 2 * n_layers * n_heads
    assert np.allclose(heads[list(REGIONS)].sum(axis=1), 1)
    head_examples = per_head_rows(result.examples)
    assert len(head_examples) == 2 * 3 * n_layers * n_heads
    means = head_examples.groupby(["seed", "layer", "head"])[list(REGIONS)].mean()
    raw = heads.set_index(["seed", "layer", "head"])[[f"{region}_raw" for region in REGIONS]]
    assert np.allclose(means.loc[raw.index].to_numpy(), raw.to_numpy(), rtol=1e-9)
    summary = result.summary_with_ci()
    assert summary["head"].isna().sum() == n_layers * 3
    head_summary = per_head_rows(summary)
    assert len(head_summary) == n_layers * n_heads * 3
    seed_mean = heads.groupby(["layer", "head"])["S_pq"].mean()
    pq = head_summary[head_summary["metric"] == "S_pq"].set_index(["layer", "head"])["mean"]
    assert np.allclose(pq.loc[seed_mean.index], seed_mean, rtol=1e-9)
    assert (head_summary["ci_low"] <= head_summary["mean"] + 1e-12).all()
    # Saved and resumed with the head rows; a folder of per-head results refuses a run without them.
    again = run_saliency(gpt2_like, "sst2", heads_config, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.examples, result.examples)
    with pytest.raises(InvalidConfigError, match="per_head"):
        run_saliency(gpt2_like, "sst2", config, out=tmp_path, progress=False)
