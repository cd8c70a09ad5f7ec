"""Length-bucketed batching with padding masks, shared by pretraining and fine-tuning.

Design choices: batches group clips of similar length (less padding, faster steps); a batch is
bounded by `batch_size` clips or by `max_batch_samples` padded samples; batch order is shuffled
per epoch from (seed, epoch), so a resumed run sees the same batches; for DDP every rank gets the
same number of batches (extra ones dropped), each rank its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from w2v2.data.audio import MIN_SAMPLES


class BucketBatchSampler(Sampler[list[int]]):
    def __init__(self, lengths: Sequence[int], batch_size: int | None = 8, max_batch_samples: int | None = None,
                 shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = False, max_length: int | None = None) -> None:
        if batch_size is None and max_batch_samples is None:
            raise ValueError("give batch_size or max_batch_samples")
        self.lengths = [min(n, max_length) if max_length else n for n in lengths]
        self.batch_size, self.max_batch_samples = batch_size, max_batch_samples
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
        order.sort(key=lambda i: self.lengths[i])  # stable: ties keep the random order
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order:
            new_longest = max(longest, self.lengths[i])
            full = self.batch_size is not None and len(current) >= self.batch_size
            budget = self.max_batch_samples
            over = budget is not None and current and new_longest * (len(current) + 1) > budget
            if full or over:
                batches.append(current)
                current, new_longest = [], self.lengths[i]
            current.append(i)
            longest = new_longest
        if current and not (self.drop_last and self.batch_size and len(current) < self.batch_size):
            batches.append(current)
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[p] for p in perm]
        per_rank = len(batches) // self.num_replicas if self.num_replicas > 1 else len(batches)
        return batches[self.rank::self.num_replicas][:per_rank]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def fit_length(wave: torch.Tensor, max_len: int | None, generator: torch.Generator | None,
               min_len: int = MIN_SAMPLES) -> torch.Tensor:
    """A random crop to `max_len` (if longer) and zero-extension to `min_len` (if shorter). wave (s,)."""
    if max_len is not None and wave.numel() > max_len:
        start = int(torch.randint(0, wave.numel() - max_len + 1, (1,), generator=generator))
        wave = wave[start:start + max_len]
    if wave.numel() < min_len:
        wave = torch.cat([wave, wave.new_zeros(min_len - wave.numel())])
    return wave


def collate_waves(waves: Sequence[torch.Tensor], max_len: int | None = None,
                  generator: torch.Generator | None = None, min_len: int = MIN_SAMPLES,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop/extend each (s,) wave, right-pad to a batch -> (wave (b, s), padding_mask (b, s) True = pad)."""
    fitted = [fit_length(w, max_len, generator, min_len) for w in waves]
    s = max(w.numel() for w in fitted)
    batch = torch.zeros(len(fitted), s)
    padding_mask = torch.ones(len(fitted), s, dtype=torch.bool)
    for i, w in enumerate(fitted):
        batch[i, :w.numel()] = w
        padding_mask[i, :w.numel()] = False
    return batch, padding_mask
