"""Decoding any audio to 16 kHz mono, and clear errors for bad files."""

import math
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from w2v2.data.audio import AudioError, find_audio, load_audio, num_samples_16k, wav_shortfall


def tone(sr: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("ext,sr", [(".wav", 8000), (".flac", 44100), (".ogg", 22050), (".mp3", 48000),
                                    (".opus", 48000), (".aiff", 32000), (".caf", 11025), (".au", 16000)])
def test_any_format_and_rate_becomes_16k_mono(tmp_path, ext: str, sr: int) -> None:
    left = tone(sr, 1.0)
    stereo = np.stack([left, left], axis=1)
    path = tmp_path / f"clip{ext}"
    sf.write(path, stereo, sr, **({"format": "OGG", "subtype": "OPUS"} if ext == ".opus" else {}))
    assert find_audio(tmp_path) == [path]  # a folder of them is found, not skipped
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.numel() - 16000) < 1200  # mp3 and opus add encoder delay/padding
    # The 440 Hz tone survives: its spectral peak sits at 440 Hz.
    spectrum = torch.fft.rfft(wave[:16000] if wave.numel() >= 16000 else wave, n=16000).abs()
    assert abs(spectrum.argmax().item() - 440) <= 2
    if ext in (".wav", ".flac"):
        assert num_samples_16k(path) == 16000


def test_bad_files_raise_audio_error_naming_the_file(tmp_path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0,), dtype=np.float32), 16000)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(800, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    zero = tmp_path / "zero.wav"
    zero.write_bytes(b"")
    for path, problem in [(corrupt, "cannot decode"), (empty, "empty"), (zero, r"empty file \(0 bytes\)"), (nan, "NaN"),
                          (tmp_path / "missing.wav", "not found")]:
        with pytest.raises(AudioError, match=problem) as info:
            load_audio(path)
        assert str(path) in str(info.value)


def test_audio_libsndfile_cannot_read_is_named_with_what_to_do(tmp_path) -> None:
    """AAC (.m4a from phones), WMA, AMR, video: a folder's such files are named in one warning, not silently
    dropped; decoding one says which format it is and how to convert it."""
    sf.write(tmp_path / "ok.wav", tone(16000, 0.5), 16000)
    for name in ["call.m4a", "memo.AAC", "clip.webm"]:
        (tmp_path / name).write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
    with pytest.warns(UserWarning, match=r"skipped 3 file\(s\) in a format .*cannot read \(.aac, .m4a, .webm\)") as w:
        assert find_audio(tmp_path) == [tmp_path / "ok.wav"]
    assert str(tmp_path / "call.m4a") in str(w[0].message) and "ffmpeg -i" in str(w[0].message)
    with pytest.raises(AudioError, match=r"cannot decode audio .*\.m4a is not a format libsndfile reads: convert"):
        load_audio(tmp_path / "call.m4a")
    with pytest.raises(AudioError) as info:  # a corrupt file of a readable format gets no conversion hint
        (tmp_path / "bad.wav").write_bytes(b"RIFF nothing")
        load_audio(tmp_path / "bad.wav")
    assert "ffmpeg" not in str(info.value)


def test_find_audio_is_recursive_and_sorted(tmp_path) -> None:
    for name in ["b/x.wav", "a.FLAC", "c/d/e.mp3", "notes.txt", "._a.FLAC", "b/._x.wav", "__MACOSX/b/._x.wav",
                 "__MACOSX/y.wav"]:  # a zip made on a Mac: its metadata files are not audio
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in find_audio(tmp_path)] == ["a.FLAC", "b/x.wav", "c/d/e.mp3"]


def test_find_audio_follows_symlinked_folders_once_and_warns_of_broken_links(tmp_path) -> None:
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "root"
    for name in [elsewhere / "s1" / "x.wav", elsewhere / "y.flac", root / "own" / "z.wav"]:
        name.parent.mkdir(parents=True, exist_ok=True)
        name.write_bytes(b"")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "own" / "loop").symlink_to(root, target_is_directory=True)  # a link back up: no endless recursion
    (root / "twice").symlink_to(elsewhere / "s1", target_is_directory=True)  # reached twice: listed once
    (root / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    with pytest.warns(UserWarning, match=r"skipped 1 broken link\(s\) named like audio: .*gone.wav"):
        found = [p.relative_to(root).as_posix() for p in find_audio(root)]
    assert found == ["linked/s1/x.wav", "linked/y.flac", "own/z.wav"]


def test_stereo_in_opposite_phase_is_its_loudest_channel_not_silence(tmp_path) -> None:
    from w2v2.data.audio import to_mono

    left = tone(16000, 1.0)
    sf.write(tmp_path / "anti.wav", np.stack([left, -0.9 * left], axis=1), 16000, subtype="FLOAT")
    assert torch.allclose(load_audio(tmp_path / "anti.wav"), torch.from_numpy(left), atol=1e-6)
    both = np.stack([left, 0.5 * left], axis=1)  # an ordinary stereo clip: the channels' mean
    assert np.allclose(to_mono(both), 0.75 * left)
    assert np.allclose(to_mono(np.zeros((100, 2), np.float32)), 0)


def test_many_channels_are_mixed_a_block_at_a_time_as_to_mono_mixes_them(tmp_path) -> None:
    """Files are decoded in blocks and mixed down as they go (a long 8-channel 192 kHz upload had taken 4 GB):
    the same samples as decoding whole and `to_mono`, the opposite-phase rule included across blocks."""
    from w2v2.data.audio import to_mono

    rng = np.random.default_rng(0)
    voice = (0.1 * rng.standard_normal(200_000)).astype(np.float32)  # three blocks of 65,536 frames and more
    four = np.stack([voice, 0.5 * voice, -0.2 * voice, 0.3 * rng.standard_normal(200_000).astype(np.float32)], 1)
    anti = np.stack([voice, -0.95 * voice], 1)
    for name, data in (("four", four), ("anti", anti)):
        sf.write(tmp_path / f"{name}.wav", data, 16000, subtype="FLOAT")
        torch.testing.assert_close(load_audio(tmp_path / f"{name}.wav"), torch.from_numpy(to_mono(data)),
                                   atol=1e-6, rtol=0)
    assert torch.allclose(load_audio(tmp_path / "anti.wav"), torch.from_numpy(voice), atol=1e-6)


def test_samples_far_beyond_full_scale_are_scaled_down_with_a_warning(tmp_path) -> None:
    loud = (tone(16000, 1.0) * 1e20).astype(np.float32)  # squares overflow float32
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"loud.wav: samples up to 5e\+19, where audio lies within .*scaled down"):
        wave = load_audio(tmp_path / "loud.wav")
    assert float(wave.abs().max()) == pytest.approx(1.0, rel=1e-3)
    assert torch.allclose(wave, torch.from_numpy(loud / np.abs(loud).max()), atol=1e-6)


def test_a_wav_cut_short_is_decoded_as_far_as_it_goes_with_a_warning(tmp_path) -> None:
    sf.write(tmp_path / "whole.wav", tone(16000, 2.0), 16000, subtype="PCM_16")
    raw = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[:len(raw) - 16000])  # 8,000 of its 32,000 samples gone
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole file: no warning
        whole = load_audio(tmp_path / "whole.wav")
    with pytest.warns(UserWarning, match=r"cut.wav: cut short: 25% of the audio its header declares is missing"
                                         r".*using the 1.50 s that are there"):
        cut = load_audio(tmp_path / "cut.wav")
    assert cut.numel() == 24000
    torch.testing.assert_close(cut, whole[:24000])
    # a streaming writer's "length unknown" (0xFFFFFFFF) is not a cut
    at = raw.index(b"data") + 4
    (tmp_path / "stream.wav").write_bytes(raw[:at] + b"\xff\xff\xff\xff" + raw[at + 4:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wav_shortfall(tmp_path / "stream.wav") is None
        assert wav_shortfall(tmp_path / "whole.wav") is None
    assert wav_shortfall(tmp_path / "cut.wav") == pytest.approx(0.25)
