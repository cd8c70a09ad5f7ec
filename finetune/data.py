"""Audio for fine-tuning: decoded once and cached, augmented on the fly, windowed for evaluation.

Bad clips never stop a run mid-epoch: a file that fails to decode is skipped with a warning,
NaN/inf samples become zeros (warned), clips shorter than the CNN's receptive field are
zero-extended (warned), silence is left as it is.
"""

from __future__ import annotations

import random
import warnings

import torch
import torchaudio.functional as AF

from finetune.config import AugmentConfig
from w2v2.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, load_audio
from w2v2.datasets import Item


class AudioCache:
    """Decoded 16 kHz mono clips by index (None for a clip that cannot be decoded)."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.cache: dict[int, torch.Tensor | None] = {}

    def __getitem__(self, i: int) -> torch.Tensor | None:
        if i not in self.cache:
            self.cache[i] = self._load(self.items[i])
        return self.cache[i]

    @staticmethod
    def _load(item: Item) -> torch.Tensor | None:
        try:
            wave = load_audio(item.path)
        except AudioError as e:
            if "NaN" not in e.problem:
                warnings.warn(f"skipping {e}", stacklevel=2)
                return None
            warnings.warn(f"{item.path}: NaN/inf samples replaced by zeros", stacklevel=2)
            wave = load_audio(item.path, nonfinite="zero")
        if wave.numel() < MIN_SAMPLES:  # collate_waves zero-extends it: mostly silence the model sees
            warnings.warn(f"{item.path}: {wave.numel()} samples at 16 kHz, shorter than the model's "
                          f"{MIN_SAMPLES} (25 ms): zero-extended", stacklevel=2)
        return wave


def augment(wave: torch.Tensor, cfg: AugmentConfig, rng: random.Random) -> torch.Tensor:
    """Speed perturbation, random gain and additive white noise at a random SNR. wave (s,)."""
    speed = rng.choice(cfg.speeds)
    if speed != 1.0:
        wave = AF.resample(wave, int(SAMPLE_RATE * speed), SAMPLE_RATE)
    wave = wave * 10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20)
    if rng.random() < cfg.noise_prob:
        power = wave.pow(2).mean().clamp(min=1e-10)
        snr = rng.uniform(*cfg.noise_snr_db)
        g = torch.Generator().manual_seed(rng.randrange(2**31))
        wave = wave + torch.randn(wave.shape, generator=g) * torch.sqrt(power / 10 ** (snr / 10))
    return wave


def windows(wave: torch.Tensor, window: int) -> list[torch.Tensor]:
    """Overlapping (50%) windows covering a long clip; a short clip is one window."""
    if wave.numel() <= window:
        return [wave]
    hop = window // 2
    starts = list(range(0, wave.numel() - window + 1, hop))
    if starts[-1] + window < wave.numel():
        starts.append(wave.numel() - window)
    return [wave[s:s + window] for s in starts]


def window_batches(lengths: list[int], batch_size: int, pad: bool) -> list[list[int]]:
    """Indices into `lengths` in batches of up to `batch_size`, shortest first. Without `pad`, a batch
    holds only equal lengths: nothing is padded, so no result can depend on its batch mates."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and (pad or lengths[batches[-1][-1]] == lengths[i]):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def padding_invariant(model: torch.nn.Module) -> bool:
    """Whether padding a clip leaves its output unchanged. Not for the group-norm CNN (base): its first
    GroupNorm normalises each channel over the whole padded length. The layer-norm CNN normalises each
    frame alone, and the context network zeroes and masks padded frames."""
    return model.cfg.encoder.norm == "layer"


@torch.no_grad()
def predict_probs(model: torch.nn.Module, waves: list[torch.Tensor], window_seconds: float,
                  batch_size: int = 8, progress: bool = False) -> torch.Tensor:
    """Class probabilities (n, num_labels): per-window softmax averaged over each clip's windows.

    A clip's result never depends on the other clips of the call (see `window_batches`). ValueError
    when the model outputs NaN/inf."""
    from tqdm import tqdm

    from w2v2.batching import collate_waves

    model.eval()
    pieces = [(owner, w) for owner, wave in enumerate(waves)
              for w in windows(wave, int(window_seconds * SAMPLE_RATE))]
    batches = window_batches([max(w.numel(), MIN_SAMPLES) for _, w in pieces], batch_size, padding_invariant(model))
    num_labels = model.cfg.head.num_labels
    sums = torch.zeros(len(waves), num_labels)
    counts = torch.zeros(len(waves), 1)
    for batch in tqdm(batches, desc="predicting", unit="batch", disable=not progress, leave=False):
        chunk = [pieces[i] for i in batch]
        wave, padding_mask = collate_waves([w for _, w in chunk], min_len=MIN_SAMPLES)
        logits = model(wave, padding_mask).logits.float()
        if not bool(logits.isfinite().all()):
            raise ValueError("the model outputs NaN/inf: its weights are broken or overflow on this input")
        for (owner, _), p in zip(chunk, torch.softmax(logits, dim=-1), strict=True):
            sums[owner] += p
            counts[owner] += 1
    return sums / counts.clamp(min=1)
