"""Decoded clips and windowed prediction: how any model of w2v2 turns recordings into probabilities.

Bad clips never stop a run: a file that fails to decode is skipped with a warning, NaN/inf samples
become zeros (warned), clips shorter than the CNN's receptive field are zero-extended (warned).
A clip is predicted in windows (8 s, half overlapping, the last one ending at the clip's end), each
window alone, so a window's result never depends on the other windows or clips of a call.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from einops import reduce
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from w2v2.data.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, load_audio
from w2v2.data.batching import collate_waves
from w2v2.data.datasets import Item
from w2v2.model import Wav2Vec2ForClassification
from w2v2.training.progress import progress_bar

# bf16 on a CPU: oneDNN builds a new bf16 convolution kernel for every input shape it has not seen (25-90 ms
# each, against 1-2 ms to run it), so clips of a thousand lengths cost more than fp32. Batches of a model
# that padding leaves unchanged are padded up to a multiple of this, so lengths repeat; the other models
# (a group-norm CNN: padding would change its answer) run in fp32.
BF16_GRID_SECONDS = 0.5


class AudioCache:
    """Decoded 16 kHz mono clips by index (None for a clip that cannot be decoded)."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.cache: dict[int, torch.Tensor | None] = {}

    def __getitem__(self, i: int) -> torch.Tensor | None:
        if i not in self.cache:
            self.cache[i] = self._load(self.items[i])
        return self.cache[i]

    def prefetch(self, num_workers: int = 0) -> None:
        """Decode every clip not yet decoded, in `num_workers` processes (0: in this one)."""
        todo = [i for i in range(len(self.items)) if i not in self.cache]
        if num_workers == 0 or len(todo) < 2:
            for i in todo:
                self[i]
            return
        loader = DataLoader(_Decode([self.items[i] for i in todo]), batch_size=None, num_workers=num_workers)
        for i, wave in zip(todo, loader, strict=True):
            self.cache[i] = wave

    @staticmethod
    def _load(item: Item) -> torch.Tensor | None:
        try:
            wave = load_audio(item.path)
        except AudioError as e:
            if not e.nonfinite:
                warnings.warn(f"skipping {e}", stacklevel=2)
                return None
            warnings.warn(f"{item.path}: NaN/inf samples replaced by zeros", stacklevel=2)
            wave = load_audio(item.path, nonfinite="zero")
        if wave.numel() < MIN_SAMPLES:  # collate_waves zero-extends it: mostly silence the model sees
            warnings.warn(f"{item.path}: {wave.numel()} samples at 16 kHz, shorter than the model's "
                          f"{MIN_SAMPLES} (25 ms): zero-extended", stacklevel=2)
        return wave


class _Decode(TorchDataset):
    """Items decoded by `AudioCache._load` in DataLoader worker processes."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> torch.Tensor | None:
        return AudioCache._load(self.items[k])


def cached_waves(cache: AudioCache, n: int) -> list[torch.Tensor]:
    """The first `n` clips of `cache`; one second of silence for a clip that cannot be decoded (it keeps its row)."""
    return [w if (w := cache[i]) is not None else torch.zeros(SAMPLE_RATE) for i in range(n)]


def speed_view(wave: torch.Tensor, speed: float) -> torch.Tensor:
    """`wave` played `speed` times faster (pitch and tempo, as in Ko et al., 2015), by resampling. (s,)"""
    return wave if speed == 1.0 else AF.resample(wave, int(SAMPLE_RATE * speed), SAMPLE_RATE)


def window_starts(n: int, window: int, hop: int | None = None) -> list[int]:
    """Start samples of windows of `window` samples every `hop` (default: half a window) covering `n`
    samples; the last window ends at the end (overlapping its neighbour more); a short clip is one window."""
    if n <= window:
        return [0]
    hop = hop or window // 2
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


def windows(wave: torch.Tensor, window: int, hop: int | None = None) -> list[torch.Tensor]:
    """The windows of `window_starts` (views, not copies) of a clip (s,)."""
    return [wave[s:s + window] for s in window_starts(wave.numel(), window, hop)]


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


def padding_invariant(model: Wav2Vec2ForClassification) -> bool:
    """Whether padding a clip leaves its output unchanged. Not for the group-norm CNN (base): its first
    GroupNorm normalises each channel over the whole padded length. The layer-norm CNN normalises each
    frame alone, and the context network zeroes and masks padded frames."""
    return model.cfg.encoder.norm == "layer"


class NonFiniteOutputs(ValueError):
    """NaN/inf logits; `outputs`: which of several classifiers run as one gave them ([0] for one)."""

    def __init__(self, outputs: list[int]) -> None:
        super().__init__("the model outputs NaN/inf: its weights are broken or overflow on this input")
        self.outputs = outputs


def checked_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax on the CPU, in fp32, of logits (b, num_labels) or (b, k, num_labels) (k classifiers run as one);
    NonFiniteOutputs (a ValueError) for NaN/inf."""
    logits = logits.float().cpu()
    finite = logits.isfinite().all(-1)
    if not bool(finite.all()):
        raise NonFiniteOutputs(sorted(set(torch.nonzero(~finite)[:, 1].tolist())) if logits.dim() == 3 else [0])
    return torch.softmax(logits, dim=-1)


@torch.no_grad()
def segment_probs(model: Wav2Vec2ForClassification, segments: list[torch.Tensor], batch_size: int = 8,
                  progress: bool = False) -> torch.Tensor:
    """Softmax (n, num_labels) of each segment (s,) as one input, computed on the model's device ((n, k,
    num_labels) for k classifiers run as one, `w2v2.emotion.shared.SharedClassifiers`). A
    segment's result never depends on the other segments of the call (see `window_batches`). ValueError
    when the model outputs NaN/inf."""
    model.eval()
    weight = next(iter(model.parameters()), None)  # an ONNX model has none: it runs on the CPU
    device = weight.device if weight is not None else torch.device("cpu")
    if not getattr(model, "batch_independent", True):  # int8 ONNX: one activation range per batch
        batch_size = 1
    pad = padding_invariant(model)
    batches = window_batches([max(w.numel(), MIN_SAMPLES) for w in segments], batch_size, pad)
    # several classifiers run as one (`w2v2.emotion.shared`) answer (b, k, num_labels) at once
    k = getattr(model, "num_outputs", None)
    probs = torch.zeros(len(segments), *((k,) if k else ()), model.cfg.head.num_labels)
    cpu_bf16 = device.type == "cpu" and torch.is_autocast_enabled("cpu") and \
        torch.get_autocast_dtype("cpu") == torch.bfloat16 and weight is not None  # not an ONNX graph
    grid = int(BF16_GRID_SECONDS * SAMPLE_RATE) if cpu_bf16 and pad else 1
    with torch.autocast("cpu", enabled=False) if cpu_bf16 and not pad else contextlib.nullcontext():
        for batch in progress_bar(batches, desc="predicting", unit="batch", disable=not progress, leave=False):
            wave, padding_mask = collate_waves([segments[i] for i in batch], min_len=MIN_SAMPLES)
            if extra := -wave.shape[1] % grid:  # padded samples, masked: the answers stay those of the clips alone
                wave, padding_mask = F.pad(wave, (0, extra)), F.pad(padding_mask, (0, extra), value=True)
            probs[batch] = checked_softmax(model(wave.to(device), padding_mask.to(device)).logits)
    return probs


def window_probs(model: Wav2Vec2ForClassification, waves: list[torch.Tensor], window_seconds: float,
                 hop_seconds: float | None = None, tta: tuple[float, ...] = (), batch_size: int = 8,
                 progress: bool = False) -> list[torch.Tensor]:
    """Per clip, (windows, num_labels) (or (windows, k, num_labels), see `segment_probs`): each window's
    softmax (windows of `window_starts`), averaged over the test-time views of that window: the window
    played at each speed of `tta` (none: as is).
    A window is predicted alone, so a long recording's timeline is the model's view of each segment."""
    if not waves:
        return []
    window = int(window_seconds * SAMPLE_RATE)
    hop = int(hop_seconds * SAMPLE_RATE) if hop_seconds else None
    speeds = tta or (1.0,)
    per_clip = [windows(wave, window, hop) for wave in waves]
    views = [speed_view(seg, speed) for segs in per_clip for seg in segs for speed in speeds]
    probs = reduce(segment_probs(model, views, batch_size, progress), "(n v) ... -> n ...", "mean", v=len(speeds))
    return list(probs.split([len(segs) for segs in per_clip]))


def predict_probs(model: Wav2Vec2ForClassification, waves: list[torch.Tensor], window_seconds: float,
                  batch_size: int = 8, progress: bool = False, tta: tuple[float, ...] = ()) -> torch.Tensor:
    """Class probabilities (n, num_labels): per-window softmax (50% overlap) averaged over each clip's
    windows (and `tta` views, see `window_probs`). A clip's result never depends on the other clips."""
    if not waves:
        return torch.zeros(0, model.cfg.head.num_labels)
    per_clip = window_probs(model, waves, window_seconds, tta=tta, batch_size=batch_size, progress=progress)
    return torch.stack([p.mean(0) for p in per_clip])


@torch.no_grad()
def layer_means(model: Wav2Vec2ForClassification, items: list[Item], window_seconds: float, progress: bool = False,
                desc: str = "features", cache: AudioCache | None = None) -> torch.Tensor:
    """(n, layers+1, d) on the CPU: each clip's hidden states averaged over its frames (and windows, as
    prediction does), one clip at a time on the model's device, so that no clip's features depend on
    padding. `cache`: the items' decoded audio where the caller keeps it for later use."""
    backbone, out = model.backbone.eval(), []
    device = next(backbone.parameters()).device
    waves = cached_waves(cache or AudioCache(items), len(items))
    for wave in progress_bar(waves, desc=desc, unit="clip", disable=not progress or None, leave=False):
        per_window = [torch.stack([h.mean(1)[0] for h in backbone(w[None].to(device),
                                                                   output_hidden_states=True).hidden_states])
                      for w in windows(wave, int(window_seconds * SAMPLE_RATE))]
        out.append(torch.stack(per_window).mean(0).cpu())
    return torch.stack(out)
