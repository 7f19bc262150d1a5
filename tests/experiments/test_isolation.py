"""Isolation and loyalty (SPEC §2): random controls, Jaccard, the restart shortcut, the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.isolation import (
    CONDITIONS,
    IsolationConfig,
    _jaccard,
    isolation_layers,
    random_rows,
    run_isolation,
)
from anchorlens.hooks import block_earlier_mask, isolation_hooks
from anchorlens.prompts import Role, build_prompt, make_batch, run_to_target


@pytest.fixture
def batch(smol_tokenizer):
    demos = [("a dull , lifeless film ", 0), ("warm and funny ", 1)]
    return make_batch([build_prompt(smol_tokenizer, "sst2", demos, text, prepend_bos=False)
                       for text in ("fine ", "a long and tedious exercise ")])


def test_random_rows_avoid_labels_bos_and_target(batch):
    generator = np.random.default_rng(0)
    for _ in range(20):
        for prompt, rows in zip(batch.prompts, random_rows(batch, generator)):
            assert len(rows) == len(prompt.demonstration_label_positions)
            assert not set(rows) & set(prompt.demonstration_label_positions)
            assert all(0 <= r < prompt.target_position and prompt.roles[r] != Role.BOS for r in rows)


def test_jaccard_by_hand():
    a = torch.tensor([[1, 2, 3], [1, 2, 3]])
    b = torch.tensor([[3, 2, 1], [3, 4, 5]])
    assert _jaccard(a, b).tolist() == [1.0, 1 / 5]


def test_isolation_layers():
    assert isolation_layers(30, 5, "first") == [0, 1, 2, 3, 4]
    assert isolation_layers(30, 5, "last") == [25, 26, 27, 28, 29]
    with pytest.raises(InvalidConfigError, match="more than the model's 2 layers"):
        isolation_layers(2, 5, "first")
    with pytest.raises(InvalidConfigError):
        IsolationConfig(k=(0,))


def test_restarting_from_the_saved_residual_equals_the_full_run(llama_like, batch):
    blocked = block_earlier_mask(batch, [p.demonstration_label_positions for p in batch.prompts])
    saved = {}
    with torch.no_grad():
        run_to_target(llama_like, batch, [("blocks.1.hook_resid_pre", lambda r, hook: saved.setdefault(1, r))])
        full = run_to_target(llama_like, batch, isolation_hooks({1: blocked}))
        restarted = run_to_target(llama_like, batch, isolation_hooks({1: blocked}), start_at_layer=1, residual=saved[1])
        everything = llama_like(batch.tokens)
    assert torch.allclose(full, restarted, atol=1e-5)
    rows = torch.arange(batch.size)
    plain = run_to_target(llama_like, batch).detach()
    assert torch.allclose(plain, everything[rows, batch.target_positions], atol=1e-5)


def test_run_isolation_rows_and_ranges(gpt2_like):
    config = IsolationConfig(seeds=(3,), n_test=4, batch_size=2, k=(1, 2))
    frame = run_isolation(gpt2_like, "sst2", config, progress=False).to_frame()
    assert sorted(map(tuple, frame[["k", "condition"]].values.tolist())) == sorted(
        (k, c) for k in (1, 2) for c in CONDITIONS
    )
    assert frame["label_loyalty"].between(0, 1).all() and frame["word_loyalty"].between(0, 1).all()
    assert (frame["n"] == 4).all()
    # Same seed, same tables.
    again = run_isolation(gpt2_like, "sst2", config, progress=False).to_frame()
    assert again.equals(frame)
