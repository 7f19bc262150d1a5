"""Every seeded random stream comes from `anchorlens.random_streams`, keyed as the results were made: each stream
yields the draws its experiment made before the streams moved there (the generator built from the same key)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from anchorlens import random_streams as streams
from anchorlens.prompts import Prompt, Role, build_prompt


def _prompt(token_ids: tuple[int, ...], example_index: int | None) -> Prompt:
    n = len(token_ids)
    roles = (Role.TEXT,) * (n - 2) + (Role.QUERY_TEXT, Role.QUERY_FORMAT)
    return Prompt("t", "", token_ids, roles, (0,) * (n - 2) + (-1, -1), (), (), n - 1, (1, 2), None, example_index)


@pytest.mark.parametrize("seed", [0, 42, 46])
def test_sampling_streams_are_the_papers(seed):
    legacy = list(range(50))
    np.random.RandomState(seed).shuffle(legacy)  # what np.random.seed(seed); np.random.shuffle(rows) does
    assert streams.shuffled_demonstration_rows(seed, 50) == legacy
    assert streams.shuffled_test_rows(seed, 50).tolist() == np.random.default_rng(seed).permutation(50).tolist()


def test_experiment_streams_draw_what_their_keys_drew_before():
    seed = 43
    assert (
        streams.shuffled_diagnosis_rows(seed, 30).tolist() == np.random.default_rng([seed, 1]).permutation(30).tolist()
    )
    assert streams.relabelling_generator(0).permutation(9).tolist() == np.random.default_rng(0).permutation(9).tolist()
    legacy, ordering = streams.fresh_demonstration_streams(seed)
    assert legacy.choice(100, 4).tolist() == np.random.RandomState(seed).choice(100, 4).tolist()
    assert ordering.permutation(6).tolist() == np.random.default_rng(seed).permutation(6).tolist()
    for draw in range(3):
        assert streams.compress_draw_generator(seed, draw).integers(1000, size=5).tolist() == (
            np.random.default_rng([seed, draw, 5]).integers(1000, size=5).tolist()
        )
    assert torch.equal(
        torch.randperm(20, generator=streams.epoch_order_generator(seed)),
        torch.randperm(20, generator=torch.Generator().manual_seed(seed)),
    )
    assert torch.equal(
        torch.randn(4, generator=streams.probe_generator()), torch.randn(4, generator=torch.Generator().manual_seed(0))
    )
    stratum = ("sst2", "smollm2-135m", 3)
    key = zlib.crc32(b"sst2|smollm2-135m|3")
    assert (
        streams.bootstrap_generator(stratum, 0).random(3).tolist() == np.random.default_rng([0, key]).random(3).tolist()
    )


def test_a_prompts_draw_is_keyed_by_seed_example_and_index_only():
    prompt = _prompt((5, 6, 7, 8), example_index=17)
    assert isinstance(prompt, streams.KeyedPrompt)
    assert streams.draw_key(prompt, 42, 3) == [42, 17, 3]
    assert streams.prompt_generator(prompt, 42, 3).permutation(10).tolist() == (
        np.random.default_rng([42, 17, 3]).permutation(10).tolist()
    )
    # another prompt of the same example (other demonstrations, other batch) draws the same
    assert streams.draw_key(_prompt((9, 9, 9, 9, 9), example_index=17), 42, 3) == [42, 17, 3]


def test_a_prompt_without_example_index_is_keyed_by_its_tokens():
    first, second = _prompt((5, 6, 7, 8), None), _prompt((5, 6, 7, 9), None)
    key = streams.draw_key(first, 42, 3)
    assert key[:2] == [42, 3] and len(key) == 10  # seed, index, eight 32-bit words of the SHA-256
    assert key == streams.draw_key(_prompt((5, 6, 7, 8), None), 42, 3)
    assert key != streams.draw_key(second, 42, 3)


def test_no_two_streams_of_a_seed_share_a_key():
    """numpy's SeedSequence ignores trailing zeros, so each stream's key ends in a non-zero entry of its own."""
    assert np.random.default_rng([42, 0]).random() == np.random.default_rng(42).random()  # the trap
    n = 40
    test_rows = streams.shuffled_test_rows(42, n).tolist()
    assert streams.shuffled_diagnosis_rows(42, n).tolist() != test_rows
    assert streams.compress_draw_generator(42, 0).permutation(n).tolist() != test_rows
    assert streams.COMPRESS_STREAM != 0 and streams.DIAGNOSIS_STREAM != 0


def test_the_old_names_still_work(smol_tokenizer):
    from anchorlens.experiments import compress, isolation

    assert isolation.draw_key is streams.draw_key
    assert compress.DRAW_STREAM == streams.COMPRESS_STREAM
    demos = [("a dull , lifeless film ", 0), ("warm and funny ", 1)]
    prompt = build_prompt(smol_tokenizer, "sst2", demos, "tedious ", 0, prepend_bos=False, example_index=3)
    assert compress.draw_positions(prompt, 42, 1) == compress.random_positions(
        prompt, np.random.default_rng([42, 1, 5])
    )
