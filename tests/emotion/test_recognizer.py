"""`EmotionRecognizer` (w2v2/emotion/recognizer.py): the Python API gives the CLI's numbers, takes arrays
as files, answers "no speech" where there is none, and standardises a recording set together."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from finetune.__main__ import main
from w2v2 import EmotionRecognizer
from w2v2.data.audio import load_audio
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.descriptors import clip_descriptors
from w2v2.emotion.melnet import BANDS, Mel
from w2v2.emotion.speech import NO_SPEECH
from w2v2.emotion.travel import TravelConfig, fit, save_travel

sys.path.insert(0, str(Path(__file__).parent))
from sounds import music, white_noise  # noqa: E402

PROBS = [f"p_{e}" for e in EMOTIONS]


@pytest.fixture(scope="module")
def travel_model(synthetic_corpus, tmp_path_factory) -> tuple[Path, Path]:
    """(a travelling model fitted on a synthetic corpus's training clips, that corpus)."""
    corpus = synthetic_corpus(96, 8, 0)
    train = pd.read_csv(corpus / "train.csv")
    x = torch.stack([clip_descriptors(load_audio(corpus / p)) for p in train.path])
    model = fit(x, train.label.tolist(), ["synth"] * len(train), train.speaker.tolist(),
                TravelConfig(mel_nets=0, epochs=20))
    folder = tmp_path_factory.mktemp("travel") / "model"
    save_travel(model, folder, {"trained_on": {"synth": len(train)}})
    return folder, corpus


def test_the_api_gives_the_clis_numbers(travel_model, tmp_path) -> None:
    folder, corpus = travel_model
    files = sorted((corpus / "test").glob("*.wav"))[:12]
    rec = EmotionRecognizer.from_pretrained(folder)
    for normalise, preds in (("clip", [rec.predict(f) for f in files]), ("set", rec.predict_many(files))):
        out = tmp_path / f"{normalise}.csv"
        main(["predict", "--ckpt", str(folder), *map(str, files), "--out", str(out), "--normalise", normalise])
        cli = pd.read_csv(out)
        api = np.array([[p.probs[e] for e in EMOTIONS] for p in preds])
        assert np.allclose(cli[PROBS].to_numpy(), api, atol=6e-5), normalise  # the CSV keeps 4 decimals
        assert list(cli.label_name) == [p.label for p in preds]
    alone = np.array([list(rec.predict(f).probs.values()) for f in files])
    together = np.array([list(p.probs.values()) for p in rec.predict_many(files)])
    assert not np.allclose(alone, together, atol=1e-3)  # a set is standardised by its own statistics


def test_an_array_is_predicted_as_the_same_audio_in_a_file(travel_model, tmp_path) -> None:
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    wave = load_audio(next((corpus / "test").glob("*.wav")))
    stereo_44k = torch.stack([wave, wave]).numpy()
    import torchaudio.functional as AF

    stereo_44k = AF.resample(torch.as_tensor(stereo_44k), 16000, 44100).numpy()
    sf.write(tmp_path / "s.wav", stereo_44k.T, 44100, subtype="FLOAT")
    from_file = rec.predict(tmp_path / "s.wav")
    for array in (stereo_44k, stereo_44k.T, torch.as_tensor(stereo_44k)):
        p = rec.predict(array, sample_rate=44100)
        assert p.label == from_file.label
        assert np.allclose(list(p.probs.values()), list(from_file.probs.values()), atol=1e-5)
    assert sum(from_file.probs.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="sample_rate"):
        rec.predict(stereo_44k)
    grad = torch.as_tensor(stereo_44k).requires_grad_()  # a tensor from a model's graph: its values
    assert rec.predict(grad, sample_rate=44100).probs == pytest.approx(from_file.probs, abs=1e-5)
    for rate in (44.1, 1):  # kHz for Hz: a clip 1,000 (or 16,000) times too long, refused before any work
        with pytest.raises(ValueError, match=f"sample_rate={rate}: .* in Hz .*under 1000 Hz"):
            rec.predict(stereo_44k, sample_rate=rate)
    for bad, what in ((b"RIFF....", "type bytes"), (None, "type NoneType"), (stereo_44k.astype(complex), "complex")):
        with pytest.raises(TypeError, match=what):
            rec.predict(bad, sample_rate=44100)
    with pytest.warns(UserWarning, match="scaled down to a peak of 1"):
        huge = rec.predict(stereo_44k * 1e20, sample_rate=44100)  # had given NaN probabilities under an emotion
    assert all(math.isfinite(v) for v in huge.probs.values()) and sum(huge.probs.values()) == pytest.approx(1.0)


def test_no_speech_is_said_for_silence_noise_and_music_and_not_for_speech(travel_model) -> None:
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    for name, sound in (("silence", torch.zeros(48000)), ("noise", white_noise(4.0)), ("music", music(6.0))):
        p = rec.predict(sound.numpy(), sample_rate=16000)
        assert p.label == NO_SPEECH and p.speech_seconds < 0.2, name
        assert p.emotion in EMOTIONS and sum(p.probs.values()) == pytest.approx(1.0, abs=1e-5)
    speech = [rec.predict(f) for f in sorted((corpus / "test").glob("*.wav"))[:8]]
    assert all(p.label in EMOTIONS and p.speech_seconds > 0.5 for p in speech)
    # no signal at all is no evidence: 1/6 each, alone or in a set (not the model's ~0.98 "disgust" for zeros);
    # noise has a signal, and keeps the model's answer (as shouted speech the detector misses would)
    waves = [torch.zeros(48000), torch.full((16000,), 0.25), white_noise(4.0), *map(load_audio, speech_files(corpus))]
    for answers in ([rec.predict(w.numpy(), sample_rate=16000) for w in waves[:3]], rec.predict_many(waves, 16000)):
        assert [a.probs == dict.fromkeys(EMOTIONS, pytest.approx(1 / 6)) for a in answers[:3]] == [True, True, False]


def speech_files(corpus: Path) -> list[Path]:
    return sorted((corpus / "test").glob("*.wav"))[:4]


def test_a_lone_clips_answer_does_not_move_with_its_volume_or_a_dc_offset(travel_model) -> None:
    """A quiet microphone is not a sad speaker: at 1/100 (-40 dB) or 3x a clip's level, or with a recorder's
    DC offset, a lone clip is still speech and gets the same probabilities."""
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    for f in sorted((corpus / "test").glob("*.wav"))[:4]:
        wave = load_audio(f)
        base = rec.predict(wave.numpy(), sample_rate=16000)
        for name, changed in (("-40 dB", wave * 0.01), ("+10 dB", wave * 3.0), ("DC 0.2", wave + 0.2)):
            p = rec.predict(changed.numpy(), sample_rate=16000)
            assert p.label == base.label and p.speech_seconds > 0.5, (f.name, name)
            assert np.allclose(list(p.probs.values()), list(base.probs.values()), atol=1e-4), (f.name, name)


def test_silence_before_a_sentence_does_not_outvote_it(travel_model) -> None:
    """A recording's answer is the mean of its windows with speech: 30 s of silence (7 of its 9 windows)
    before a sentence used to decide it. Without any speech, every window counts (and it is no speech)."""
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    speech = load_audio(sorted((corpus / "test").glob("*.wav"))[1])
    recording = torch.cat([torch.zeros(16000 * 30), speech]).numpy()
    p = rec.predict(recording, sample_rate=16000)
    df = rec.timeline(recording, sample_rate=16000)
    talking = df[df.label_name != NO_SPEECH]
    assert 0 < len(talking) < len(df) / 2
    assert np.allclose(list(p.probs.values()), talking[PROBS].mean().to_numpy(), atol=1e-5)
    assert not np.allclose(list(p.probs.values()), df[PROBS].mean().to_numpy(), atol=1e-2)  # all: another
    quiet = rec.predict(np.zeros(16000 * 20, dtype=np.float32), sample_rate=16000)
    assert quiet.label == NO_SPEECH and np.allclose(list(quiet.probs.values()), quiet.windows.mean(0).numpy())


def test_a_timeline_spans_the_recording_and_marks_the_windows_without_speech(travel_model) -> None:
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    speech = load_audio(next((corpus / "test").glob("*.wav")))
    recording = torch.cat([speech.repeat(4)[: 16000 * 8], torch.zeros(16000 * 12)])  # 8 s of speech, 12 of silence
    df = rec.timeline(recording.numpy(), sample_rate=16000, window_seconds=4.0, hop_seconds=4.0)
    assert df.start_s.iloc[0] == 0 and df.end_s.iloc[-1] == pytest.approx(20.0)
    assert list(df.label_name[:2] != NO_SPEECH) == [True, True] and (df.label_name[2:] == NO_SPEECH).all()
    assert np.allclose(df[PROBS].sum(axis=1), 1, atol=1e-5)


def test_a_long_file_streams_window_by_window_with_the_same_probabilities(travel_model, tmp_path, monkeypatch,
                                                                          capsys) -> None:
    import finetune.predict
    import w2v2.emotion.recognizer as recognizer
    import w2v2.emotion.windows as windows

    folder, corpus = travel_model
    speech = load_audio(next((corpus / "test").glob("*.wav")))
    recording = torch.cat([speech.repeat(20)[: 16000 * 16], torch.zeros(16000 * 16)])  # 32 s, the last 16 silent
    sf.write(tmp_path / "long.wav", recording.numpy(), 16000, subtype="FLOAT")
    whole = tmp_path / "whole"
    main(["predict", "--ckpt", str(folder), str(tmp_path / "long.wav"), "--timeline", str(whole),
          "--out", str(tmp_path / "whole.csv")])
    monkeypatch.setattr(finetune.predict, "STREAM_SECONDS", 20.0)  # longer files stream
    monkeypatch.setattr(recognizer, "STREAM_BATCH", 3)  # in stretches of 3 windows

    def never(*args, **kwargs):
        pytest.fail("a long file was decoded whole")

    monkeypatch.setattr(windows, "load_audio", never)
    monkeypatch.setattr(recognizer, "load_audio", never)
    streamed = tmp_path / "streamed"
    main(["predict", "--ckpt", str(folder), str(tmp_path / "long.wav"), "--timeline", str(streamed),
          "--out", str(tmp_path / "streamed.csv")])
    a, b = pd.read_csv(whole / "long.csv"), pd.read_csv(streamed / "long.csv")
    assert len(a) == len(b) == 7 and np.allclose(a[PROBS], b[PROBS], atol=1e-6)  # the same windows, alone
    assert list(a.start_s) == list(b.start_s) and list(b.label_name[-2:]) == [NO_SPEECH] * 2
    rows = pd.read_csv(tmp_path / "whole.csv"), pd.read_csv(tmp_path / "streamed.csv")
    assert np.allclose(rows[0][PROBS], rows[1][PROBS], atol=1e-4) and rows[1].label_name[0] in EMOTIONS
    assert abs(rows[0].speech_s[0] - rows[1].speech_s[0]) < 0.5  # the VAD ran on stretches, not the whole
    capsys.readouterr()
    monkeypatch.setattr(windows, "load_audio", load_audio)  # a short file beside it is decoded, as it should be
    monkeypatch.setattr(recognizer, "load_audio", load_audio)
    short = next((corpus / "test").glob("*.wav"))
    main(["predict", "--ckpt", str(folder), str(tmp_path / "long.wav"), str(short)])
    said = capsys.readouterr().out  # the long file has speech too, but is taken alone: the line says why
    assert "each of the files under 0.333333 min alone (1 with speech; a recording set needs 10); 1 file(s) " \
           "over 0.333333 min, each taken alone window by window" in said


def test_a_long_recording_is_not_its_own_set_nor_moved_by_a_silent_file(travel_model) -> None:
    """Two files, one of them 60 s long (14 windows): no set of ten recordings, so each is predicted alone;
    a file without speech is in no set at all."""
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    clips = [load_audio(f) for f in sorted((corpus / "test").glob("*.wav"))[:30]]
    long = torch.cat(clips)[: 16000 * 60].numpy()
    short = clips[0].numpy()
    alone_long, alone_short = rec.predict(long, sample_rate=16000), rec.predict(short, sample_rate=16000)
    for others in ([np.zeros(48000, dtype=np.float32)], [short]):
        together = rec.predict_many([long, *others], sample_rate=16000)
        assert together[0].probs == pytest.approx(alone_long.probs, abs=1e-6)
    assert rec.predict_many([long, short], sample_rate=16000)[1].probs == pytest.approx(alone_short.probs, abs=1e-6)
    assert rec.predict_many([long, np.zeros(48000, dtype=np.float32)], sample_rate=16000)[1].label == NO_SPEECH


def test_evaluate_scores_each_clip_as_predict_answers_it(travel_model, tmp_path, capsys) -> None:
    """A set with silent clips and a clip padded with silence: `evaluate` and `submit` score the probabilities
    `predict` gives (silent clips out of the set's statistics, windows without speech out of a clip's mean)."""
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    files = sorted((corpus / "test").glob("*.wav"))[:12]
    waves = [load_audio(f) for f in files]
    silence = torch.zeros(16000 * 3)
    waves += [silence, silence.clone(), torch.cat([torch.zeros(16000 * 20), waves[0], torch.zeros(16000 * 20)])]
    preds = rec.predict_waves(waves, "set")
    scored, each = rec.clip_probs(waves, (), "set")
    assert np.allclose(scored.numpy(), [[p.probs[e] for e in EMOTIONS] for p in preds], atol=1e-6)
    assert each.shape == (1, len(waves), 6)
    assert [p.label for p in preds][12:14] == [NO_SPEECH, NO_SPEECH]
    without_silence = rec.clip_probs([*waves[:12], waves[14]], (), "set")[0]
    talking = [*range(12), 14]
    assert np.allclose(scored[talking].numpy(), without_silence.numpy(), atol=1e-6)  # silent clips move no one
    # the CLI: evaluate's accuracy is that of predict's answers (their most probable emotion) on the same files
    for i, w in enumerate(waves[12:]):
        sf.write(tmp_path / f"extra{i}.wav", w.numpy(), 16000)
    paths = [*files, *(tmp_path / f"extra{i}.wav" for i in range(3))]
    labels = [i % 6 for i in range(len(paths))]
    pd.DataFrame({"path": [str(p) for p in paths], "label": labels}).to_csv(tmp_path / "set.csv", index=False)
    main(["evaluate", "--ckpt", str(folder), "--data", str(tmp_path / "set.csv"), "--out", str(tmp_path / "m.json")])
    main(["predict", "--ckpt", str(folder), *map(str, paths), "--out", str(tmp_path / "p.csv")])
    answers = pd.read_csv(tmp_path / "p.csv")[PROBS].to_numpy().argmax(1)
    import json
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == pytest.approx(
        float(np.mean(answers == np.array(labels))))


def test_integer_arrays_are_scaled_as_a_decoder_would(travel_model) -> None:
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    wave = load_audio(next((corpus / "test").glob("*.wav"))).numpy()
    as_int16 = np.round(np.clip(wave, -1, 32767 / 32768) * 32768).astype(np.int16)
    as_uint8 = np.round(np.clip(wave, -1, 127 / 128) * 128 + 128).astype(np.uint8)
    others = [load_audio(f).numpy() for f in sorted((corpus / "test").glob("*.wav"))[1:12]]
    for array, scale in ((as_int16, 32768.0), (as_uint8, 128.0)):
        floats = (array.astype(np.float64) - (128 if array.dtype == np.uint8 else 0)) / scale
        assert rec.predict(array, sample_rate=16000).probs == pytest.approx(
            rec.predict(floats, sample_rate=16000).probs, abs=1e-5)
        # in a set, an integer clip is one recording among others, not a clip 32768 times louder
        got = rec.predict_many([array, *others], sample_rate=16000)[0].probs
        assert got == pytest.approx(rec.predict_many([floats, *others], sample_rate=16000)[0].probs, abs=1e-5)
        if array.dtype == np.int16:  # 16 bits keep the clip (8 bits add audible quantisation noise)
            assert got == pytest.approx(rec.predict_many([wave, *others], sample_rate=16000)[0].probs, abs=1e-3)


def test_the_api_refuses_what_the_cli_refuses(travel_model, tmp_path) -> None:
    folder, corpus = travel_model
    rec = EmotionRecognizer.from_pretrained(folder)
    files = sorted((corpus / "test").glob("*.wav"))[:12]
    with pytest.raises(ValueError, match="3 speakers for 12 recordings"):
        rec.predict_many(files, speakers=["a"] * 3)
    for kwargs in (dict(window_seconds=0), dict(window_seconds=-1), dict(hop_seconds=0),
                   dict(window_seconds=2, hop_seconds=3)):
        with pytest.raises(ValueError, match="seconds"):
            rec.timeline(files[0], **kwargs)
    with pytest.raises(TypeError, match="a list of recordings"):
        rec.predict_many(str(files[0]))
    with pytest.raises(IsADirectoryError, match="a folder"):
        rec.predict(corpus / "test")
    with pytest.raises(ValueError, match="sample_rate=0"):
        rec.predict(np.zeros(16000, dtype=np.float32), sample_rate=0)
    with pytest.raises(TypeError, match="sample_rate='16000': give the array's sample rate as a number"):
        rec.predict(np.zeros(16000, dtype=np.float32), sample_rate="16000")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a list of 2 recordings: predict_many"):
        rec.predict(files[:2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample rate is read from the file"):
        rec.predict(files[0], sample_rate=8000)
    with pytest.raises(TypeError, match="speakers='DC': give one name per recording"):
        rec.predict_many(files, speakers="DC")


def test_predict_names_missing_files_before_any_work_and_says_how_it_standardised(travel_model, tmp_path,
                                                                                  capsys) -> None:
    folder, corpus = travel_model
    files = sorted((corpus / "test").glob("*.wav"))[:12]
    with pytest.raises(SystemExit, match="error: no such file or folder: .*missing.wav"):
        main(["predict", "--ckpt", str(folder), str(files[0]), str(tmp_path / "missing.wav")])
    capsys.readouterr()
    main(["predict", "--ckpt", str(folder), *map(str, files)])
    assert "normalisation: the 12 files with speech as one recording set (each answer 0.55 from the set" in \
        capsys.readouterr().out
    main(["predict", "--ckpt", str(folder), *map(str, files[:9])])
    assert "normalisation: each of the files alone (9 with speech; a recording set needs 10)" in capsys.readouterr().out


def test_the_normalisation_line_says_what_the_travelling_model_did() -> None:
    """evaluate, submit and predict print the plan the call used: clips without speech are in no group, a set
    needs min_group clips with speech, and a speaker with n clips is standardised as one where
    n + speaker_prior >= min_group."""
    from dataclasses import replace

    from finetune.predict import normalisation_line

    rec = EmotionRecognizer.from_pretrained()  # the shipped travelling model: min_group 10, speaker_prior 10

    def say(normalise: str, groups: list) -> str:
        plan = rec.plan(groups)
        assert plan is not None
        return normalisation_line(plan, normalise)  # type: ignore[arg-type]

    assert say("clip", [None] * 4) == "normalisation: each of the clips alone (--normalise clip)"
    assert say("set", ["set"] * 9 + [None]) == ("normalisation: each of the clips alone (9 with speech; a recording "
                                                "set needs 10)")
    assert say("set", ["set"] * 12 + [None] * 3) == (
        "normalisation: the 12 clips with speech as one recording set (each answer 0.55 from the set, 0.45 from "
        "the clip alone); --normalise clip takes each alone: a set should mix emotions")
    three = ["speaker:a"] * 5 + ["speaker:b"] * 5 + ["speaker:c"] * 2
    assert say("speaker", three).startswith("normalisation: per speaker: 3 speakers in a set of 12 clips with "
                                            "speech, each speaker's statistics shrunk toward the set's by a prior "
                                            "of 10 clips")
    travel = rec.members[0].model  # type: ignore[attr-defined]
    shipped = travel.cfg
    try:
        travel.cfg = replace(shipped, speaker_prior=0.0)
        assert say("speaker", ["speaker:a"] * 12 + ["speaker:b"] * 3) == (
            "normalisation: per speaker: 1 speaker in a set of 15 clips with speech, each by its own statistics; "
            "1 with fewer than 10 clips, each of those alone (each answer 0.60 from its speaker, 0.40 from the "
            "clip alone); "
            "--normalise set or clip to change")
    finally:
        travel.cfg = shipped
    silence = torch.zeros(16000 * 2)
    plan = rec.clip_scores([silence] * 12, normalise="set").plan  # the call's own groups
    assert plan is not None and plan.words() == "each of the clips alone (none with speech)"
    assert EmotionRecognizer.from_pretrained("pretrained:emotion-ravdess").clip_scores([silence]).plan is None


def test_the_plan_is_what_probs_does() -> None:
    """Rows the plan takes alone get the lone-clip heads' answer exactly; rows it keeps in a group do not, and
    are blended with it at the plan's set weight."""
    torch.manual_seed(0)
    model = EmotionRecognizer.from_pretrained().members[0].model  # type: ignore[attr-defined]
    x = torch.randn(40, model.pool_mean.numel()) * model.pool_std + model.pool_mean
    mels = [Mel(torch.randn(BANDS, 50), torch.ones(50, dtype=torch.bool)) for _ in range(40)]  # for its CNN
    groups = ["a"] * 20 + ["b"] * 15 + [None] * 5
    plan = model.plan(groups)
    assert plan.recordings == 35 and plan.groups == 2 and plan.groups_alone == 0
    assert plan.set_weight == pytest.approx(35 / 45)
    alone = model.mean_softmax(model.clip_heads, (model.clip_input(x) - model.pool_mean) / model.pool_std)
    probs = model.probs(x, groups, mels=mels)
    torch.testing.assert_close(probs[35:], alone[35:])
    assert (probs[:35] - alone[:35]).abs().amax(-1).min() > 1e-4
    few = ["a"] * 6 + [None] * 34  # six recordings: no set, every row alone
    assert not model.plan(few).kept and torch.equal(model.probs(x, few, mels=mels), alone)
    windows = model.plan(["a"] * 20, recordings=[i // 4 for i in range(20)])  # 5 recordings of 4 windows
    assert windows.recordings == 5 and not windows.kept


def test_predict_many_names_every_unreadable_recording_in_one_error(tmp_path) -> None:
    from w2v2.data.audio import AudioError

    (tmp_path / "text.wav").write_text("not audio " * 20)
    rec = EmotionRecognizer.from_pretrained()
    with pytest.raises(AudioError, match=r"2 of 3 recordings: could not be read, so none was predicted .*"
                                         r"text.wav: cannot decode audio.*missing.wav: file not found"):
        rec.predict_many(["examples/speech.wav", tmp_path / "text.wav", tmp_path / "missing.wav"])
