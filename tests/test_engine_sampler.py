"""Samplers: exact evaluation shards, and training shards that do not depend on the process count."""

from __future__ import annotations

from collections import Counter

import pytest

from overfeat.engine.sampler import ExactEvalSampler, ShardedTrainSampler


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [0, 1, 3, 7, 10, 13, 50_001])
def test_eval_sampler_covers_every_sample_exactly_once(world_size, n):
    shards = [list(ExactEvalSampler(n, world_size, r)) for r in range(world_size)]
    assert Counter(i for s in shards for i in s) == Counter(range(n))
    assert sum(len(ExactEvalSampler(n, world_size, r)) for r in range(world_size)) == n
    # Balanced: no process waits for more than one extra image.
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def _steps(sampler: ShardedTrainSampler) -> list[list[int]]:
    flat = list(sampler)
    b = sampler.local_batch
    return [flat[i : i + b] for i in range(0, len(flat), b)]


@pytest.mark.parametrize("world_size", [2, 4])
def test_train_step_sees_the_same_images_for_any_process_count(world_size):
    n, batch = 103, 8
    one = ShardedTrainSampler(n, batch, 1, 0, seed=5)
    one.set_epoch(3)
    many = [ShardedTrainSampler(n, batch, world_size, r, seed=5) for r in range(world_size)]
    for s in many:
        s.set_epoch(3)
    per_rank = [_steps(s) for s in many]
    for step, global_batch in enumerate(_steps(one)):
        joined = [i for rank in per_rank for i in rank[step]]
        assert joined == global_batch


def test_train_epoch_is_a_permutation_without_the_partial_last_batch():
    n, batch = 103, 8  # 12 full steps, 7 images left over (decision DROP_LAST_TRAIN_BATCH)
    s = ShardedTrainSampler(n, batch, seed=1)
    s.set_epoch(0)
    order = list(s)
    assert len(order) == len(set(order)) == 96 == len(s)
    assert set(order) <= set(range(n))


def test_train_order_is_a_function_of_seed_and_epoch():
    def order(seed, epoch):
        s = ShardedTrainSampler(64, 8, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2)
    assert order(0, 1) != order(1, 1)
    assert sorted(order(0, 1)) == list(range(64))


@pytest.mark.parametrize("start", [0, 1, 5, 12])
def test_train_sampler_resumed_mid_epoch_yields_the_rest_of_the_epoch(start):
    full = ShardedTrainSampler(103, 8, 2, 1, seed=2)
    full.set_epoch(4)
    resumed = ShardedTrainSampler(103, 8, 2, 1, seed=2)
    resumed.set_epoch(4, start_step=start)
    assert _steps(resumed) == _steps(full)[start:]
    assert len(resumed) == (12 - start) * 4


def test_train_sampler_rejects_a_batch_that_does_not_split_over_processes():
    with pytest.raises(ValueError, match="multiple of the process count"):
        ShardedTrainSampler(100, 10, world_size=4)
    with pytest.raises(ValueError, match="lower --batch-size"):
        ShardedTrainSampler(5, 8)
