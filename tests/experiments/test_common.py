"""Shared experiment plumbing: batching under a token budget, config validation."""

from __future__ import annotations

import pytest

from anchorlens.errors import InvalidConfigError
from anchorlens.experiments.common import ExperimentConfig, _groups


class _Sized:
    def __init__(self, length):
        self.length = length


def test_groups_respect_batch_size_and_token_budget():
    prompts = [_Sized(n) for n in (10, 10, 10, 100, 100, 300)]
    groups = _groups(prompts, batch_size=2, max_tokens=None)
    assert [len(g) for g in groups] == [2, 2, 2]
    groups = _groups(prompts, batch_size=8, max_tokens=250)
    assert [[p.length for p in g] for g in groups] == [[10, 10, 10, 100, 100][:3], [100, 100], [300]]
    assert all(len(g) * max(p.length for p in g) <= 250 or len(g) == 1 for g in groups)


@pytest.mark.parametrize("fields,problem", [
    ({"seeds": ()}, "at least one seed"), ({"seeds": (1, 1)}, "seeds repeat"), ({"n_test": 0}, "n_test must be"),
    ({"batch_size": 0}, "batch_size must be"), ({"shots_per_class": 0}, "shots_per_class must be"),
])
def test_config_validation(fields, problem):
    with pytest.raises(InvalidConfigError, match=problem):
        ExperimentConfig(**fields)
