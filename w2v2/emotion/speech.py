"""Speech presence: silence, noise and music are not emotions.

Silero VAD (the `silero-vad` package, MIT; a 2 MB model shipped inside the wheel, so nothing is
downloaded) gives a speech probability every 32 ms. A clip or window "has speech" when at least
`MIN_SPEECH_SECONDS` of it score above `THRESHOLD`; otherwise the answer is NO_SPEECH, not an emotion.

Design choices:
- silero-vad over an energy rule: energy cannot tell white noise or music from a voice, and silero
  is small (one LSTM), runs on one CPU thread and is kept up to date;
- a low threshold: silero's own 0.5 missed 2.9% of the labelled corpora's clips (shouted anger, sad
  near-whispers score low); at 0.1 and 0.1 s (and the level below), 0.23% (16 of 6,942), while silence,
  white noise, hum and music stay below at any level (docs/travel.md);
- every clip heard at one level (its loud samples scaled to 0.7, by at most +60 dB): silero's scores
  fall with the level, and a quiet recording is still speech; silence stays silence;
- an absolute amount of speech, not a share: a 20 s recording with 2 s of speech has speech, and
  single acted words (0.4 s) keep their emotion;
- the model is loaded once, lazily, and the thread count the package sets at import is put back.
"""

from __future__ import annotations

import functools
import threading
import warnings
from importlib.resources import files

import torch

from w2v2.config import SAMPLE_RATE

NO_SPEECH = "no speech"
MIN_SPEECH_SECONDS = 0.1
THRESHOLD = 0.1  # emotional extremes (screams, whispers) score low: measured in docs/travel.md
CHUNK = 512  # samples at 16 kHz: 32 ms, silero's frame
LEVEL = 0.7  # the level the VAD hears every clip's loud samples at (`at_level`; at 0.3 music scored as speech)
MAX_GAIN = 1000.0  # +60 dB at most: a clip whose loud samples are under 0.0007 is raised by 60 dB only
_LOCK = threading.Lock()  # the scripted model keeps state between chunks: one clip at a time


@functools.cache
def _model() -> torch.jit.ScriptModule:
    threads = torch.get_num_threads()
    try:
        import silero_vad
    except ImportError as e:  # a broken install: say which package
        raise ImportError("speech detection needs the silero-vad package: pip install silero-vad") from e
    finally:
        torch.set_num_threads(threads)  # silero_vad sets one thread for the whole process at import
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the package ships a TorchScript file
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(files(silero_vad) / "data" / "silero_vad.jit"), map_location="cpu")
    return model.eval()


def at_level(wave: torch.Tensor) -> torch.Tensor:
    """The clip scaled so that its loud samples (the 99.9th percentile of |x|) sit at `LEVEL`, by at most
    `MAX_GAIN`: the VAD hears a quiet recording as it hears a loud one (at 1/100 of its level, half of
    four RAVDESS clips were "no speech"), its mean (a DC offset) removed first. Digital silence stays silence."""
    wave = wave - wave.mean() if wave.numel() else wave  # a DC offset is no sound
    mags = wave.abs()[:: max(1, wave.numel() // 1_000_000)]  # a subsample: the percentile of a long stretch
    loud = float(mags.kthvalue(max(1, int(0.999 * mags.numel()))).values) if mags.numel() else 0.0
    return wave * min(LEVEL / loud, MAX_GAIN) if loud > 0 else wave


@torch.no_grad()
def speech_probs(wave: torch.Tensor) -> torch.Tensor:
    """Speech probability (n,) of each 32 ms chunk of a 16 kHz clip (s,), heard at one level (`at_level`)."""
    wave = at_level(wave.float().flatten())
    if wave.numel() < CHUNK:
        wave = torch.nn.functional.pad(wave, (0, CHUNK - wave.numel()))
    with _LOCK:
        model = _model()
        model.reset_states()
        return model.audio_forward(wave[None], SAMPLE_RATE)[0]


def speech_seconds_of(probs: torch.Tensor) -> float:
    """Seconds of speech in 32 ms speech probabilities (`speech_probs`)."""
    return float((probs > THRESHOLD).sum()) * CHUNK / SAMPLE_RATE


def speech_seconds(wave: torch.Tensor) -> float:
    """Seconds of a 16 kHz clip (s,) that the VAD takes for speech."""
    return speech_seconds_of(speech_probs(wave))
