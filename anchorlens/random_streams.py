"""Every seeded random stream of the package, each built here from the key its numbers depend on.

A result is reproducible only if each random draw is a pure function of a key that says nothing about
batching, order or how many other draws were made. The keys, all private generators (the global numpy and
torch states are never touched):

| stream | generator | used by |
| --- | --- | --- |
| demonstration rows | ``np.random.RandomState(seed).shuffle`` of the row ids | `anchorlens.sampling` |
| test rows | ``np.random.default_rng(seed).permutation(n_rows)`` | `anchorlens.sampling` |
| saliency's demos | ``np.random.RandomState(seed)`` (rows), ``np.random.default_rng(seed)`` (order) | saliency |
| diagnosis' extra queries | ``np.random.default_rng([seed, DIAGNOSIS_STREAM])`` | diagnose |
| diagnosis' relabellings | ``np.random.default_rng(seed)``, seed ``PERMUTATION_SEED`` (0) | diagnose |
| a prompt's draw | ``np.random.default_rng([seed, example, index])`` (`draw_key`) | isolation (layer), heads (draw) |
| a compression draw | ``np.random.default_rng([seed, draw, COMPRESS_STREAM])`` | compress |
| re-weighting's epoch order | ``torch.Generator().manual_seed(seed)`` | reweight |
| bootstrap resamples | ``np.random.default_rng([seed, crc32(stratum)])`` | `anchorlens.stats` |
| hook-check probe | ``torch.Generator().manual_seed(0)`` | `anchorlens.hooks` |
| a random model's weights | ``torch.manual_seed(seed)`` in ``torch.random.fork_rng`` | `anchorlens.models` |

The first two equal the paper's reference code (`anchorlens.sampling`). numpy's ``SeedSequence`` ignores
trailing zeros (``default_rng([seed, 0])`` is ``default_rng(seed)``, the test-row shuffle), so no key list ends
in 0 on purpose: the diagnosis stream ends in 1, the compression draws in `COMPRESS_STREAM`.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class KeyedPrompt(Protocol):
    """What a prompt's draw is keyed by: its example index, or its token ids when it has none
    (`anchorlens.prompts.Prompt` is one)."""

    @property
    def example_index(self) -> int | None: ...

    @property
    def token_ids(self) -> tuple[int, ...]: ...


#: Last entry of every compression draw's key. Non-zero because numpy's SeedSequence ignores trailing zeros:
#: ``default_rng([seed, 0])`` is ``default_rng(seed)``, the generator that shuffles the seed's test set.
COMPRESS_STREAM = 5
#: Last entry of the key of the diagnosis' extra queries from the demonstration split (not 0, as above).
DIAGNOSIS_STREAM = 1


def shuffled_demonstration_rows(seed: int, n_rows: int) -> list[int]:
    """``range(n_rows)`` shuffled as ``np.random.seed(seed); np.random.shuffle(rows)`` does (the paper's code):
    the order in which the seed's demonstrations are met."""
    rows = list(range(n_rows))
    np.random.RandomState(seed).shuffle(rows)
    return rows


def shuffled_test_rows(seed: int, n_rows: int) -> np.ndarray:
    """``range(n_rows)`` in the seed's test order: ``default_rng(seed).permutation``, which is exactly what
    Hugging Face ``Dataset.shuffle(seed=seed)`` does."""
    return np.random.default_rng(seed).permutation(n_rows)


def fresh_demonstration_streams(seed: int) -> tuple[np.random.RandomState, np.random.Generator]:
    """Saliency's fresh demonstrations, as the paper's code draws them: a legacy generator that draws each test
    input's rows in turn, and the generator whose one permutation orders every input's demonstrations."""
    return np.random.RandomState(seed), np.random.default_rng(seed)


def shuffled_diagnosis_rows(seed: int, n_rows: int) -> np.ndarray:
    """The demonstration split's rows in the order diagnose takes extra queries from it: its own stream,
    not the one the demonstrations were drawn with, keyed by the seed."""
    return np.random.default_rng([seed, DIAGNOSIS_STREAM]).permutation(n_rows)


def relabelling_generator(seed: int) -> np.random.Generator:
    """The generator of diagnose's random class relabellings (its Mantel test beyond exact enumeration)."""
    return np.random.default_rng(seed)


def draw_key(prompt: KeyedPrompt, seed: int, index: int) -> list[int]:
    """The entropy a prompt's random draw is seeded with: (seed, test example, index), never anything about
    batching; `index` is the layer (isolation) or the draw (heads).

    Without an example index the prompt's token ids stand in for it: ``[seed, index, *w]`` with w the eight
    32-bit words of the SHA-256 of its token ids (a different length of key, so the two kinds cannot
    coincide)."""
    if prompt.example_index is not None:
        return [seed, prompt.example_index, index]
    digest = hashlib.sha256(np.asarray(prompt.token_ids, dtype=np.int64).tobytes()).digest()
    return [seed, index, *np.frombuffer(digest, dtype=np.uint32).tolist()]


def prompt_generator(prompt: KeyedPrompt, seed: int, index: int) -> np.random.Generator:
    """The generator of a prompt's draw `index` (`draw_key`)."""
    return np.random.default_rng(draw_key(prompt, seed, index))


def compress_draw_generator(seed: int, draw: int) -> np.random.Generator:
    """The generator of compression's Hidden_random draw `draw` of seed `seed`: keyed by (seed, draw) only, so a
    draw is the same however many draws or inputs there are and however they are batched."""
    return np.random.default_rng([seed, draw, COMPRESS_STREAM])


def epoch_order_generator(seed: int) -> torch.Generator:
    """The CPU generator that reshuffles re-weighting's training prompts every epoch."""
    return torch.Generator().manual_seed(seed)


def bootstrap_generator(stratum: tuple, seed: int) -> np.random.Generator:
    """The generator of one stratum's resamples: the seed and a CRC-32 of the stratum's name, so a stratum's
    resamples do not depend on which other strata a table has."""
    key = zlib.crc32("|".join(str(part) for part in stratum).encode())
    return np.random.default_rng([seed, key])


def probe_generator() -> torch.Generator:
    """The CPU generator of `anchorlens.hooks.verify_attention_hooks`' random probe directions (seed 0)."""
    return torch.Generator().manual_seed(0)


@contextmanager
def random_weights_stream(seed: int) -> Iterator[None]:
    """The global torch generator seeded with `seed` for the block, and restored afterwards: the weights of
    `anchorlens.models.random_model`, which the model constructors (Hugging Face's and TransformerLens's) draw
    from the global state, taking no generator of their own."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
