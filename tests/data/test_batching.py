"""Length-bucketed batches: coverage, budgets, sharding, crops and padding masks."""

import torch

from w2v2.data.batching import BucketBatchSampler, collate_waves


def test_batches_cover_everything_once_within_the_budget() -> None:
    lengths = [int(x) for x in torch.randint(1000, 50000, (200,), generator=torch.Generator().manual_seed(0))]
    sampler = BucketBatchSampler(lengths, batch_size=None, max_batch_samples=120000, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(max(lengths[i] for i in b) * len(b) <= 120000 for b in batches if len(b) > 1)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new order each epoch
    sampler.set_epoch(0)
    assert list(sampler) == batches  # ... reproducibly


def test_ranks_get_disjoint_batches_of_equal_count() -> None:
    lengths = list(range(1000, 1000 + 101))
    shards = [list(BucketBatchSampler(lengths, batch_size=4, num_replicas=2, rank=r, seed=3)) for r in range(2)]
    assert len(shards[0]) == len(shards[1])
    assert {i for b in shards[0] for i in b}.isdisjoint({i for b in shards[1] for i in b})


def test_collate_crops_pads_and_extends_short_clips() -> None:
    waves = [torch.ones(50000), torch.ones(3000), torch.ones(100)]
    wave, padding_mask = collate_waves(waves, max_len=16000, generator=torch.Generator().manual_seed(0))
    assert wave.shape == (3, 16000)
    assert (~padding_mask).sum(-1).tolist() == [16000, 3000, 400]  # 100 samples zero-extended to 400
    assert wave[2, 100:400].abs().sum() == 0 and wave[1, 3000:].abs().sum() == 0
