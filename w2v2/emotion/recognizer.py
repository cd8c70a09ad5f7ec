"""`EmotionRecognizer`: the one inference path under the CLI, the web app, the report and the Python API.

    from w2v2 import EmotionRecognizer
    rec = EmotionRecognizer.from_pretrained()            # the shipped model; or "pretrained:NAME", a folder
    p = rec.predict("clip.wav")                          # p.label, p.probs {"angry": 0.1, ...}
    many = rec.predict_many(["a.wav", "b.wav"])          # one recording set, standardised together
    df = rec.timeline("long.wav")                        # each window's probabilities over time

Design choices:
- a model is a list of members, each a network (a w2v2 classifier checkpoint) or a travelling model
  (`w2v2.emotion.travel`); every member predicts each window, and the members' probabilities are averaged;
- a recording with less than `MIN_SPEECH_SECONDS` of speech (silence, noise, music) is answered
  NO_SPEECH, and so is such a window of a timeline; its six probabilities are still given (a detector's miss
  on shouted or whispered speech keeps the model's answer), except where the recording holds no signal at
  all (digital silence, an unreadable file read as silence): 1/6 each, no evidence (`has_signal`);
- how recordings are standardised for the travelling members: `normalise="speaker"` (the default) per
  speaker where `speakers` are given (each speaker's statistics shrunk toward the whole set's:
  `TravelConfig.speaker_prior`) and as one recording set otherwise, `"set"` the recordings of one
  call as one set, `"clip"` each alone (so is a call with one recording). Clips without speech stay out
  of a set's statistics; each recording counts once in them however many windows it has, and a set of
  fewer than `TravelConfig.min_group` recordings with speech is predicted clip by clip. These rules are
  `TravelModel.plan`'s alone: `probs` follows it, and the plan a call used comes back with its answers
  (`predict_set`, `clip_scores`) to say in words what was done, rather than being restated here;
- network members are loaded for a call and let go after it unless `keep_loaded` (the web app and the API
  keep them). Members with the same CNN run as one (`w2v2.emotion.shared`): the CNN once a batch, a backbone
  the linear probes share once, each head on it, their parts held once. Loaded for a call, the members that
  may share (`share_key`: a frozen init's CNN) are loaded together, so a recipe's ensemble needs its
  distinct parts' memory at once (its fine-tunes' Transformers, one CNN, the probes' backbone); a member
  with its own CNN (the tiny model) is loaded for its turn alone;
- audio may be a path, or an array (samples,) / (channels, samples) / (samples, channels) with its
  `sample_rate`: it is averaged to mono and resampled to 16 kHz, as files are (integer PCM scaled to
  [-1, 1) as a decoder scales it);
- `evaluate` and `submit` score the probabilities `predict_waves` answers with (`clip_scores`: one scoring
  step, `scored`, under both);
- a file longer than `STREAM_SECONDS` is predicted from the file a stretch of STREAM_BATCH windows at a
  time (`stream`): each stretch decoded, resampled, its speech found and its windows predicted alone, so
  memory does not grow with the recording (a two-hour file is never decoded whole). Its windows are
  standardised alone, as a lone clip's are.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import numpy as np
import pandas as pd
import torch

from w2v2.checkpoint import CheckpointError, read_meta
from w2v2.data.audio import (
    MIN_SAMPLE_RATE,
    SAMPLE_RATE,
    AudioError,
    audio_info,
    load_audio,
    load_segment,
    resample,
    tamed,
    to_mono,
)
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.descriptors import clip_descriptors
from w2v2.emotion.exported import OnnxClassifier, is_onnx
from w2v2.emotion.melnet import log_mel
from w2v2.emotion.members import (
    SHIPPED_CLASSIFIER,
    blamed,
    checkpoint_spec,
    classifier_checkpoint,
    load_classifier,
    member_folders,
    member_weights,
    trained_window,
    travel_folder,
)
from w2v2.emotion.shared import SharedClassifiers, run_groups, shared_parts
from w2v2.emotion.speech import CHUNK, MIN_SPEECH_SECONDS, NO_SPEECH, THRESHOLD, speech_probs, speech_seconds_of
from w2v2.emotion.travel import GroupPlan, TravelModel, is_travel, load_travel
from w2v2.emotion.windows import NonFiniteOutputs, speed_view, window_probs, window_starts, windows
from w2v2.model import Wav2Vec2ForClassification
from w2v2.training import Precision, inference_precision, resolve_device
from w2v2.training.progress import progress_bar

WINDOW_SECONDS = 8.0
STREAM_SECONDS = 600.0  # files longer than this are predicted window by window (`EmotionRecognizer.stream`)
STREAM_BATCH = 64  # windows decoded and predicted together when streaming (4 min of audio at 8 s, 4 s hop)
Normalise = Literal["speaker", "set", "clip"]
Audio = str | Path | np.ndarray | torch.Tensor


@dataclass
class Prediction:
    """One recording's answer: `label` an emotion name or NO_SPEECH; `probs` the six emotions' probabilities
    (summing to 1, given even without speech); `windows` (w, 6) each window's; `speech` the VAD's 32 ms
    speech probabilities (empty for a streamed file, whose timeline comes with it)."""

    label: str
    probs: dict[str, float]
    seconds: float
    speech_seconds: float
    windows: torch.Tensor = field(repr=False)
    speech: torch.Tensor = field(repr=False, default_factory=lambda: torch.zeros(0))

    @property
    def emotion(self) -> str:
        """The most probable emotion, even where the label is NO_SPEECH."""
        return max(self.probs, key=self.probs.__getitem__)


class ClipScores(NamedTuple):
    """Whole clips' probabilities as `EmotionRecognizer.clip_scores` gives them."""

    probs: torch.Tensor  # (n, 6) the members' weighted mean
    each: torch.Tensor  # (m, n, 6) each member's
    plan: GroupPlan | None  # how a travelling member took the clips (None: no travelling member)


class Member(Protocol):
    name: str
    weight: float  # its share of the ensemble's vote (`w2v2.emotion.members.member_weights`)

    def window_probs(self, waves: list[torch.Tensor], window_seconds: float | None, hop_seconds: float | None,
                     tta: tuple[float, ...], groups: list[str | None], progress: bool) -> list[torch.Tensor]:
        """Per clip (windows, 6); groups: each clip's recording set or speaker (None: alone)."""
        ...


class NetworkMember:
    """A w2v2 emotion classifier checkpoint (a fine-tune, a probe, the tiny model)."""

    weight = 1.0

    def __init__(self, ckpt: Path, device: torch.device, keep_loaded: bool) -> None:
        self.name, self.ckpt, self.device = str(ckpt), ckpt, device
        self.model: Wav2Vec2ForClassification | None = load_classifier(ckpt, device)[0] if keep_loaded else None

    def classifier(self) -> Wav2Vec2ForClassification:
        return self.model or load_classifier(self.ckpt, self.device)[0]

    def window_probs(self, waves: list[torch.Tensor], window_seconds: float | None, hop_seconds: float | None,
                     tta: tuple[float, ...], groups: list[str | None], progress: bool) -> list[torch.Tensor]:
        with blamed(self.ckpt):
            return window_probs(self.classifier(), waves, window_seconds or trained_window(self.ckpt), hop_seconds,
                                tta, progress=progress)


class OnnxMember:
    """An exported network (`w2v2.emotion.exported`), run by onnxruntime on the CPU."""

    weight = 1.0

    def __init__(self, ckpt: Path, graphs: dict[Path, OnnxClassifier] | None = None) -> None:
        """graphs: the graphs already loaded, by file: members that share one (`exported.export_shared`) share
        its session."""
        from w2v2.emotion.exported import OnnxClassifier, onnx_graph

        self.name, self.ckpt = str(ckpt), ckpt
        graph = (onnx_graph(ckpt) or ckpt).resolve()
        graphs = {} if graphs is None else graphs
        if graph not in graphs:
            graphs[graph] = OnnxClassifier(ckpt)
        self.model = graphs[graph]
        self.output: int | None = read_meta(ckpt).get("onnx", {}).get("output")  # its logits in a shared graph

    def window_probs(self, waves: list[torch.Tensor], window_seconds: float | None, hop_seconds: float | None,
                     tta: tuple[float, ...], groups: list[str | None], progress: bool) -> list[torch.Tensor]:
        with blamed(self.ckpt):
            probs = window_probs(self.model, waves, window_seconds or trained_window(self.ckpt),  # type: ignore[arg-type]
                                 hop_seconds, tta, progress=progress)
        return probs if self.output is None else [p[:, self.output] for p in probs]


class TravelMember:
    """A travelling model: descriptors of each window, standardised by its clip's group."""

    weight = 1.0

    def __init__(self, folder: Path) -> None:
        self.name = str(folder)
        self.model: TravelModel
        self.model, info = load_travel(folder)
        # a recipe's descriptors member windows as its run's networks do; the shipped model 8 s
        self.window = float(info.get("window_seconds", WINDOW_SECONDS))

    def window_probs(self, waves: list[torch.Tensor], window_seconds: float | None, hop_seconds: float | None,
                     tta: tuple[float, ...], groups: list[str | None], progress: bool) -> list[torch.Tensor]:
        window = int((window_seconds or self.window) * SAMPLE_RATE)
        hop = int(hop_seconds * SAMPLE_RATE) if hop_seconds else None
        per_clip = [windows(w, window, hop) for w in waves]
        # the windows of a group's clips are standardised together, each clip counting once; a lone clip's
        # windows each alone (a long recording's windows are not each other's norm: its emotion would be
        # standardised away)
        row_groups = [g for segs, g in zip(per_clip, groups, strict=True) for _ in segs]
        row_clips = [i for i, segs in enumerate(per_clip) for _ in segs]
        floor = self.model.cfg.log_floor

        def rows(speed: float) -> torch.Tensor:
            views = [speed_view(s, speed) for segs in per_clip for s in segs]
            mels = [log_mel(v) for v in views] if self.model.reads_mels else None
            return self.model.probs(torch.stack([clip_descriptors(v, floor) for v in views]), row_groups, row_clips,
                                    mels)

        probs = torch.stack([rows(speed) for speed in tta or (1.0,)]).mean(0)
        return list(probs.split([len(segs) for segs in per_clip]))


def share_key(ckpt: Path) -> str | None:
    """What a network may share with others, read from its metadata before it is loaded: the init whose CNN it
    kept frozen (a recipe's fine-tunes and probes), None where it trained its own (it runs alone, loaded for
    its turn only). Whether the parts really are the same is then checked on the weights."""
    meta = read_meta(ckpt)
    tuned = meta.get("finetune", {})
    return str(tuned["init"]) if tuned.get("init") and tuned.get("freeze_feature_encoder") else None


def network_window_probs(members: Sequence[NetworkMember], waves: list[torch.Tensor], window_seconds: float | None,
                         hop_seconds: float | None, tta: tuple[float, ...], progress: bool
                         ) -> list[list[torch.Tensor]]:
    """Each network member's `window_probs` (per clip (windows, 6)), members with the same CNN and window run
    as one (`SharedClassifiers`): the same answers as each alone, the shared parts computed once. Members not
    kept loaded are loaded a group at a time (those that may share, `share_key`), the others one at a time."""
    own = [window_seconds or trained_window(m.ckpt) for m in members]
    keys = [None if m.model is not None else share_key(m.ckpt) for m in members]
    kept = [i for i, m in enumerate(members) if m.model is not None]
    units = ([kept] if kept else []) + [[i for i, k in enumerate(keys) if k == key and members[i].model is None]
                                        for key in dict.fromkeys(k for k in keys if k is not None)]
    units += [[i] for i, k in enumerate(keys) if k is None and members[i].model is None]
    out: list[list[torch.Tensor]] = [[] for _ in members]
    for unit in units:
        models = shared_parts(members[i].classifier() for i in unit)
        for together in run_groups(models, [own[i] for i in unit]):
            with blamed_output([members[unit[g]].ckpt for g in together]):
                shared = models[together[0]] if len(together) == 1 else \
                    SharedClassifiers([models[g] for g in together])
                probs = window_probs(shared, waves, own[unit[together[0]]], hop_seconds, tta,  # type: ignore[arg-type]
                                     progress=progress)  # per clip (windows, 6), or (windows, k, 6)
            for j, g in enumerate(together):
                out[unit[g]] = probs if len(together) == 1 else [p[:, j] for p in probs]
        del models  # a unit loaded for this call is let go before the next loads
    return out


@contextlib.contextmanager
def blamed_output(ckpts: Sequence[Path]) -> Iterator[None]:
    """`blamed` for one member or several run as one: a NaN/inf output is put to the member whose output it
    is (`NonFiniteOutputs`), any other ValueError to them all."""
    if len(ckpts) == 1:
        with blamed(ckpts[0]):
            yield
        return
    try:
        yield
    except CheckpointError:
        raise
    except NonFiniteOutputs as e:
        raise CheckpointError(f"{ckpts[e.outputs[0]]}: {e}") from None
    except ValueError as e:
        raise CheckpointError(f"{', '.join(map(str, ckpts))} (run as one): {e}") from None


def onnx_window_probs(members: Sequence[OnnxMember], waves: list[torch.Tensor], window_seconds: float | None,
                      hop_seconds: float | None, tta: tuple[float, ...], progress: bool) -> list[list[torch.Tensor]]:
    """Each exported member's `window_probs`, a graph that several members share run once for all of them."""
    out: list[list[torch.Tensor]] = [[] for _ in members]
    for graph in dict.fromkeys(m.model for m in members):
        together = [i for i, m in enumerate(members) if m.model is graph]
        seconds = window_seconds or trained_window(members[together[0]].ckpt)
        with blamed(Path(", ".join(str(members[i].ckpt) for i in together))):
            probs = window_probs(graph, waves, seconds, hop_seconds, tta, progress=progress)  # type: ignore[arg-type]
        for i in together:
            out[i] = probs if members[i].output is None else [p[:, members[i].output] for p in probs]
    return out


def load_members(models: Sequence[str | Path], device: torch.device, keep_loaded: bool = False) -> list[Member]:
    """The members of the named models (pretrained:NAME, run folders, ensemble parents, travelling models),
    each checked before any network is loaded."""
    paths = [checkpoint_spec(str(m)) if isinstance(m, str) else m for m in models]
    parts: list[tuple[Path, float]] = []  # (a member, its share of the vote)
    for path in paths:
        folders = member_folders(path)
        parts += list(zip(folders, member_weights(path, folders), strict=True)) if folders else [(path, 1.0)]
    # every part checked (a travelling model, or a classifier's metadata) before any model is loaded
    # a member whose kind has no vote (weight 0 in its parent's ensemble.json) is not loaded or run
    checked = [(travel_folder(part) or classifier_checkpoint(part), weight) for part, weight in parts if weight > 0]
    found: list[Member] = []
    graphs: dict[Path, OnnxClassifier] = {}
    for p, weight in checked:
        member: Member = TravelMember(p) if is_travel(p) else OnnxMember(p, graphs) if is_onnx(p) else \
            NetworkMember(p, device, keep_loaded)
        member.weight = weight
        found.append(member)
    kept = [m for m in found if isinstance(m, NetworkMember) and m.model is not None]
    shared_parts(m.model for m in kept)  # type: ignore[misc]  # kept members hold their shared parts once
    return found


def as_wave(audio: Audio, sample_rate: int | None) -> torch.Tensor:
    """A 16 kHz mono float32 clip (s,) of a path, or of an array with its sample rate. Integer samples are
    scaled to [-1, 1) as a decoder would (int16 by 32768; uint8 centred on 128)."""
    if isinstance(audio, (str, Path)):
        if Path(audio).is_dir():
            raise IsADirectoryError(f"{audio}: a folder; predict_many takes its files (w2v2.data.audio.find_audio)")
        return load_audio(audio)
    if isinstance(audio, (list, tuple)) and audio and isinstance(audio[0], (str, Path)):
        raise TypeError(f"a list of {len(audio)} recordings: predict_many(...) takes several, predict(...) one")
    if not isinstance(audio, (np.ndarray, torch.Tensor, list, tuple)):
        raise TypeError(f"audio of type {type(audio).__name__}: give a file path, or the samples as a numpy array "
                        "or torch tensor with their sample_rate (encoded bytes: soundfile.read(io.BytesIO(data)))")
    if sample_rate is None:
        raise ValueError("an audio array needs its sample_rate")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise TypeError(f"sample_rate={sample_rate!r}: give the array's sample rate as a number of Hz (e.g. 16000)")
    if not sample_rate >= MIN_SAMPLE_RATE:  # 44.1 (kHz for Hz) would be 1,000 times too long, at a huge cost
        raise ValueError(f"sample_rate={sample_rate}: give the array's sample rate in Hz (e.g. 16000); rates under "
                         f"{MIN_SAMPLE_RATE} Hz are not audio")
    array = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if array.dtype.kind not in "iuf":  # complex, boolean, strings, objects
        raise TypeError(f"audio of dtype {array.dtype}: give real samples (float, or integer PCM)")
    if array.dtype.kind in "iu":  # PCM integers, as read by scipy.io.wavfile or a sound card
        info = np.iinfo(array.dtype)
        middle = (int(info.max) + int(info.min) + 1) // 2  # 0 for signed, 128 for uint8
        array = (array.astype(np.float64) - middle) / (int(info.max) + 1 - middle)
    wave = torch.as_tensor(array, dtype=torch.float32)
    if wave.dim() == 2:  # channels first or last: the shorter side is the channels
        wave = torch.from_numpy(to_mono((wave.T if wave.shape[0] <= wave.shape[1] else wave).numpy()).copy())
    if wave.dim() != 1 or wave.numel() == 0:
        raise ValueError(f"audio of shape {tuple(wave.shape)}: give samples (s,) or (channels, samples)")
    if not bool(wave.isfinite().all()):
        raise ValueError("the audio holds NaN or infinite values")
    return resample(tamed(wave, "the audio array"), int(sample_rate)).contiguous()


def check_windows(window_seconds: float | None, hop_seconds: float | None) -> None:
    """ValueError for a window or hop that is not a positive duration, or a hop that would leave gaps."""
    for name, value in (("window_seconds", window_seconds), ("hop_seconds", hop_seconds)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name}={value}: give a positive number of seconds")
    if window_seconds and hop_seconds and hop_seconds > window_seconds:
        raise ValueError(f"hop_seconds={hop_seconds} is longer than window_seconds={window_seconds}: the windows "
                         "would leave gaps")


def speech_in(voiced: torch.Tensor, starts: list[int], window: int, offset: int = 0) -> list[float]:
    """Seconds of speech in each window starting at `starts` (samples), from 32 ms speech flags that begin at
    sample `offset`."""
    return [float(voiced[(s - offset) // CHUNK:(s - offset + window) // CHUNK].sum()) * CHUNK / SAMPLE_RATE
            for s in starts]


def has_signal(wave: torch.Tensor) -> bool:
    """Whether a clip holds any signal: digital silence, a constant, and an unreadable file read as silence
    (`--skip-bad`) hold none, so no evidence for any emotion (1/6 each), not the model's answer to an input it
    never saw (about 0.98 "disgust" for digital silence)."""
    return wave.numel() > 0 and float(wave.max() - wave.min()) > 0.0


def speech_mean(windows: torch.Tensor, window_speech: Sequence[float] | None) -> torch.Tensor:
    """A recording's probabilities (..., 6) from its windows' (..., w, 6): the mean of the windows with speech
    (`window_speech`, seconds of each), of all windows where none has speech or the counts differ (a network
    whose own window is not the one the speech was counted in)."""
    talking = [i for i, s in enumerate(window_speech or []) if s >= MIN_SPEECH_SECONDS]
    if talking and len(window_speech or []) == windows.shape[-2]:
        return windows[..., talking, :].mean(-2)
    return windows.mean(-2)


def answer(windows: torch.Tensor, seconds: float, speech_seconds: float, speech: torch.Tensor | None = None,
           window_speech: Sequence[float] | None = None) -> Prediction:
    """A recording's Prediction from its windows' probabilities (w, 6): their `speech_mean`, NO_SPEECH without
    speech. Thirty seconds of silence before a sentence do not outvote it."""
    mean = speech_mean(windows, window_speech)
    label = EMOTIONS[int(mean.argmax())] if speech_seconds >= MIN_SPEECH_SECONDS else NO_SPEECH
    return Prediction(label, {e: float(v) for e, v in zip(EMOTIONS, mean, strict=True)}, seconds, speech_seconds,
                      windows, speech if speech is not None else torch.zeros(0))


class EmotionRecognizer:
    """An emotion model (one network, an ensemble, a travelling model) ready to predict recordings."""

    def __init__(self, members: list[Member], name: str, device: torch.device, precision: Precision = "fp32",
                 share: bool = True) -> None:
        """share=False: every member runs alone, its shared parts computed again (the benchmark's reference)."""
        if not members:
            raise ValueError(f"{name}: no models in it")
        self.members, self.name, self.device, self.precision = members, name, device, precision
        self.share = share
        weights = torch.tensor([float(getattr(m, "weight", 1.0)) for m in members])
        self.weights = weights / weights.sum()  # each member's share of the vote
        inference_precision(precision, device)  # refused here, at load, rather than on each call
        networks = [m for m in members if not isinstance(m, TravelMember)]
        if precision == "bf16" and networks and all(isinstance(m, OnnxMember) for m in networks):
            warnings.warn(f"{name}: ONNX graphs run as they were exported (fp32 or int8): precision bf16 changes "
                          "nothing for them", stacklevel=2)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | Sequence[str | Path] | None = None, device: str = "cpu",
                        precision: Precision = "fp32", keep_loaded: bool = True, share: bool = True
                        ) -> EmotionRecognizer:
        """The shipped model (None), pretrained:NAME, a run folder, an ensemble parent or an exported folder;
        a list of them is one ensemble."""
        names = [SHIPPED_CLASSIFIER] if name_or_path is None else (
            [name_or_path] if isinstance(name_or_path, (str, Path)) else list(name_or_path))
        dev = resolve_device(device)
        return cls(load_members(names, dev, keep_loaded), ", ".join(map(str, names)), dev, precision, share)

    @property
    def window_seconds(self) -> float:
        """The window the members were trained with where they share one, else WINDOW_SECONDS (8 s)."""
        own = {m.window if isinstance(m, TravelMember) else trained_window(m.ckpt)  # type: ignore[attr-defined]
               for m in self.members}
        return own.pop() if len(own) == 1 else WINDOW_SECONDS

    def window_probs(self, waves: list[torch.Tensor], window_seconds: float | None = None,
                     hop_seconds: float | None = None, tta: tuple[float, ...] = (),
                     groups: list[str | None] | None = None,
                     progress: bool = False, each: bool = False) -> list[torch.Tensor]:
        """Per clip (windows, 6), the members' mean (each=True: (members, windows, 6)). window_seconds None:
        the window the members were trained with where they share one, else 8 s (`window_seconds`: every
        member must cut a clip into the same windows); hop None: half a window."""
        window_seconds = window_seconds or self.window_seconds
        groups = groups if groups is not None else [None] * len(waves)
        per_member: list[list[torch.Tensor]] = [[] for _ in self.members]
        # networks, and exported members, run together where they share parts (`network_window_probs`,
        # `onnx_window_probs`; a progress bar of batches), then every other member alone (a bar of members)
        together = [[i for i, m in enumerate(self.members) if isinstance(m, kind)] if self.share else []
                    for kind in (NetworkMember, OnnxMember)]
        alone = [i for i in range(len(self.members)) if not any(i in t for t in together)]
        with inference_precision(self.precision, self.device):
            for indices, run in zip(together, (network_window_probs, onnx_window_probs), strict=True):
                if indices:
                    found = run([self.members[i] for i in indices], waves, window_seconds,  # type: ignore[operator]
                                hop_seconds, tta, progress)
                    for i, probs in zip(indices, found, strict=True):
                        per_member[i] = probs
            for i in progress_bar(alone, desc="predicting", unit="model", leave=False,
                                  disable=len(alone) < 2 or not progress or None):
                per_member[i] = self.members[i].window_probs(waves, window_seconds, hop_seconds, tta, groups,
                                                             progress and len(alone) == 1)
        if each:
            return [torch.stack(clip) for clip in zip(*per_member, strict=True)]
        return [self.vote(torch.stack(clip)) for clip in zip(*per_member, strict=True)]

    def vote(self, each: torch.Tensor) -> torch.Tensor:
        """The ensemble's probabilities from each member's (members, ...): their weighted mean."""
        return torch.einsum("m,m...->...", self.weights.to(each.dtype), each)

    def clip_probs(self, waves: list[torch.Tensor], tta: tuple[float, ...] = (), normalise: Normalise = "clip",
                   speakers: Sequence[str | None] | None = None, progress: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the members' mean (n, 6), each member's (m, n, 6)) of whole clips, as `predict_waves` answers them
        (its `probs`, in the members' shared trained window)."""
        scores = self.clip_scores(waves, tta, normalise, speakers, progress)
        return scores.probs, scores.each

    def clip_scores(self, waves: list[torch.Tensor], tta: tuple[float, ...] = (), normalise: Normalise = "clip",
                    speakers: Sequence[str | None] | None = None, progress: bool = False) -> ClipScores:
        """`clip_probs` and how a travelling member took the clips (`evaluate` and `submit` score and say these)."""
        scored, plan = self.scored(waves, normalise, speakers, None, None, tta, progress)
        each = torch.stack([speech_mean(windows, in_windows) for windows, _, _, in_windows in scored], 1)
        return ClipScores(self.vote(each), each, plan)

    def plan(self, groups: list[str | None]) -> GroupPlan | None:
        """How the (first) travelling member takes clips of these normalisation groups (`TravelModel.plan`, the
        rules its `probs` follows); None without a travelling member."""
        travel = [m.model for m in self.members if isinstance(m, TravelMember)]
        return travel[0].plan(groups) if travel else None

    def scored(self, waves: list[torch.Tensor], normalise: Normalise, speakers: Sequence[str | None] | None,
               window_seconds: float | None, hop_seconds: float | None, tta: tuple[float, ...], progress: bool
               ) -> tuple[list[tuple[torch.Tensor, torch.Tensor, float, list[float]]], GroupPlan | None]:
        """(per clip: (each member's windows (m, w, 6), the 32 ms speech probabilities, seconds of speech,
        seconds of speech in each window); the travelling member's plan). The one scoring step under
        `predict_set` and `clip_scores`: the speech found first, so that a clip without speech stays out of a
        set's statistics."""
        if isinstance(speakers, str):
            raise TypeError(f"speakers={speakers!r}: give one name per recording (a list), e.g. [{speakers!r}] * n")
        if speakers is not None and len(speakers) != len(waves):
            raise ValueError(f"{len(speakers)} speakers for {len(waves)} recordings: give one per recording")
        check_windows(window_seconds, hop_seconds)
        speech = [speech_probs(w) for w in waves]
        seconds = [speech_seconds_of(p) for p in speech]
        groups = self.groups(len(waves), normalise, speakers, [s >= MIN_SPEECH_SECONDS for s in seconds])
        window_seconds = window_seconds or self.window_seconds  # the members' shared window, else 8 s
        each = self.window_probs(waves, window_seconds, hop_seconds, tta, groups, progress, each=True)
        each = [w if has_signal(wave) else torch.full_like(w, 1 / len(EMOTIONS))  # no signal, no evidence
                for wave, w in zip(waves, each, strict=True)]
        window = int(window_seconds * SAMPLE_RATE)
        hop = int(hop_seconds * SAMPLE_RATE) if hop_seconds else None
        return [(windows, vad, s, speech_in(vad > THRESHOLD, window_starts(wave.numel(), window, hop), window))
                for wave, windows, vad, s in zip(waves, each, speech, seconds, strict=True)], self.plan(groups)

    def predict_waves(self, waves: list[torch.Tensor], normalise: Normalise = "speaker",
                      speakers: Sequence[str | None] | None = None, window_seconds: float | None = None,
                      hop_seconds: float | None = None, tta: tuple[float, ...] = (), progress: bool = False
                      ) -> list[Prediction]:
        """Predictions of decoded 16 kHz clips, taken as one recording set (see the module's notes)."""
        return self.predict_set(waves, normalise, speakers, window_seconds, hop_seconds, tta, progress)[0]

    def predict_set(self, waves: list[torch.Tensor], normalise: Normalise = "speaker",
                    speakers: Sequence[str | None] | None = None, window_seconds: float | None = None,
                    hop_seconds: float | None = None, tta: tuple[float, ...] = (), progress: bool = False
                    ) -> tuple[list[Prediction], GroupPlan | None]:
        """(`predict_waves`' predictions, how a travelling member took the clips: None without one)."""
        if not waves:
            return [], None
        scored, plan = self.scored(waves, normalise, speakers, window_seconds, hop_seconds, tta, progress)
        return [answer(self.vote(windows), wave.numel() / SAMPLE_RATE, s, vad, in_windows)
                for wave, (windows, vad, s, in_windows) in zip(waves, scored, strict=True)], plan

    @staticmethod
    def groups(n: int, normalise: Normalise, speakers: Sequence[str | None] | None, speech: list[bool]
               ) -> list[str | None]:
        """Each clip's normalisation group: None alone, else its speaker or the whole set ("set")."""
        if normalise not in ("speaker", "set", "clip"):
            raise ValueError(f"normalise={normalise!r}: 'speaker', 'set' or 'clip'")
        if normalise == "clip":
            return [None] * n
        names = list(speakers) if speakers is not None and normalise == "speaker" else [None] * n
        return [(f"speaker:{names[i]}" if names[i] is not None else "set") if speech[i] else None for i in range(n)]

    def predict(self, audio: Audio, sample_rate: int | None = None) -> Prediction:
        """One recording (a path, or an array with its sample_rate), standardised alone."""
        if isinstance(audio, (str, Path)) and sample_rate is not None:
            raise ValueError(f"{audio}: a file's sample rate is read from the file; sample_rate is for an array")
        return self.predict_waves([as_wave(audio, sample_rate)], "clip")[0]

    def predict_many(self, audios: Sequence[Audio], sample_rate: int | None = None,
                     normalise: Normalise = "speaker", speakers: Sequence[str | None] | None = None,
                     progress: bool = False) -> list[Prediction]:
        """Many recordings, by default as one recording set, per speaker where `speakers` names them
        (normalise="clip": each alone)."""
        if isinstance(audios, (str, Path)):
            raise TypeError(f"predict_many takes a list of recordings, not one: predict_many([{str(audios)!r}]) "
                            "or predict(...)")
        waves, bad = [], []
        for a in audios:  # every unreadable file named in one error, rather than the first of them
            try:
                waves.append(as_wave(a, sample_rate))
            except AudioError as e:
                bad.append(str(e))
        if bad:
            raise AudioError(f"{len(bad)} of {len(audios)} recordings", "could not be read, so none was predicted (a "
                             "recording set is standardised together): " + "; ".join(bad[:10])
                             + (f"; and {len(bad) - 10} more" if len(bad) > 10 else ""))
        return self.predict_waves(waves, normalise, speakers, progress=progress)

    def timeline(self, audio: Audio, sample_rate: int | None = None, window_seconds: float = WINDOW_SECONDS,
                 hop_seconds: float | None = None) -> pd.DataFrame:
        """start_s, end_s, the six probabilities, speech_s and label_name of each window of one recording (a
        file longer than STREAM_SECONDS streamed window by window; both paths check the window and hop)."""
        if isinstance(audio, (str, Path)) and file_seconds(audio) > STREAM_SECONDS:
            return self.stream(audio, window_seconds, hop_seconds)[1]
        wave = as_wave(audio, sample_rate)
        pred = self.predict_waves([wave], "clip", window_seconds=window_seconds, hop_seconds=hop_seconds)[0]
        return timeline_frame(pred, wave.numel(), window_seconds, hop_seconds)

    def stream(self, path: str | Path, window_seconds: float = WINDOW_SECONDS, hop_seconds: float | None = None,
               tta: tuple[float, ...] = (), progress: bool = False) -> tuple[Prediction, pd.DataFrame]:
        """(the Prediction, the timeline) of a file read STREAM_BATCH windows at a time (each stretch decoded,
        its speech found, its windows predicted alone): memory bounded whatever the recording's length."""
        check_windows(window_seconds, hop_seconds)
        frames, sr = audio_info(path)
        n = int(round(frames * SAMPLE_RATE / sr))
        window = int(window_seconds * SAMPLE_RATE)
        hop = int(hop_seconds * SAMPLE_RATE) if hop_seconds else None
        starts = window_starts(n, window, hop)
        probs: list[torch.Tensor] = []
        speech: list[float] = []
        total = 0.0
        for k in progress_bar(range(0, len(starts), STREAM_BATCH), desc="stretches", unit="stretch",
                      disable=not progress or None, leave=False):
            chunk = starts[k:k + STREAM_BATCH]
            lo = chunk[0]
            span = load_segment(path, lo / SAMPLE_RATE, (min(chunk[-1] + window, n) - lo) / SAMPLE_RATE)
            waves = [span[s - lo:s - lo + window] for s in chunk]
            probs += [p[0] for p in self.window_probs(waves, window_seconds, None, tta)]  # each wave one window
            voiced = speech_probs(span) > THRESHOLD
            speech += speech_in(voiced, chunk, window, offset=lo)
            upto = starts[k + STREAM_BATCH] - lo if k + STREAM_BATCH < len(starts) else span.numel()
            total += float(voiced[:upto // CHUNK].sum()) * CHUNK / SAMPLE_RATE  # each stretch's own part once
        windows_probs = torch.stack(probs)
        return (answer(windows_probs, n / SAMPLE_RATE, total, window_speech=speech),
                window_frame(windows_probs, starts, n, window, speech))


def file_seconds(path: str | Path) -> float:
    frames, sr = audio_info(path)
    return frames / sr


def timeline_frame(pred: Prediction, num_samples: int, window_seconds: float, hop_seconds: float | None
                   ) -> pd.DataFrame:
    """start_s, end_s, p_<emotion>, speech_s and label_name of each window of a decoded clip of `num_samples`,
    from its Prediction (its windows' probabilities and its speech: the VAD does not run again)."""
    window = int(window_seconds * SAMPLE_RATE)
    hop = int(hop_seconds * SAMPLE_RATE) if hop_seconds else None
    starts = window_starts(num_samples, window, hop)
    return window_frame(pred.windows, starts, num_samples, window, speech_in(pred.speech > THRESHOLD, starts, window))


def window_frame(probs: torch.Tensor, starts: list[int], num_samples: int, window: int, speech: list[float]
                 ) -> pd.DataFrame:
    """The timeline table of windows starting at `starts` (samples) with their probabilities and speech."""
    df = pd.DataFrame({"start_s": [s / SAMPLE_RATE for s in starts],
                       "end_s": [min(s + window, num_samples) / SAMPLE_RATE for s in starts]})
    df = pd.concat([df, pd.DataFrame(probs.double().numpy(), columns=[f"p_{e}" for e in EMOTIONS])], axis=1)
    df["speech_s"] = speech
    df["label_name"] = [EMOTIONS[i] if s >= MIN_SPEECH_SECONDS else NO_SPEECH
                   for i, s in zip(probs.argmax(-1).tolist(), speech, strict=True)]
    return df
