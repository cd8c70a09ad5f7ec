"""The travelling model (w2v2/emotion/travel.py): group standardisation, class masks, balanced weights, and
what standardisation per speaker/set buys on speakers whose voices are offset."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from w2v2.emotion.travel import (
    TravelConfig,
    balanced_weights,
    class_masks,
    fit,
    load_travel,
    save_travel,
    shrunk_standardise,
    standardise,
    voice_groups,
)


def descriptors_only(**settings) -> TravelConfig:
    """Descriptors alone: these tests have no audio for the log-mel CNNs."""
    return TravelConfig(mel_nets=0, **settings)


def test_standardise_uses_each_groups_own_statistics() -> None:
    x = torch.tensor([[1.0], [3.0], [10.0], [30.0]])
    z = standardise(x, ["a", "a", "b", "b"])
    assert torch.allclose(z, torch.tensor([[-1.0], [1.0], [-1.0], [1.0]]))


def test_an_absent_class_is_never_a_negative() -> None:
    masks = class_masks([0, 1, 0, 2, 3], ["a", "a", "a", "b", "b"])
    assert masks.tolist()[0] == [True, True, False, False, False, False]
    assert masks.tolist()[3] == [False, False, True, True, False, False]
    # the loss of a row of corpus a does not depend on the logits of the classes a lacks
    logits = torch.randn(1, 6, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(logits.masked_fill(~masks[:1], float("-inf")), torch.tensor([0]))
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad[0, 2:] == 0) and logits.grad[0, 1] > 0


def test_balanced_weights_give_every_corpus_and_class_the_same_total() -> None:
    labels = [0] * 90 + [1] * 10 + [0] * 5 + [2] * 5
    corpora = ["big"] * 100 + ["small"] * 10
    w = balanced_weights(labels, corpora)
    totals = {(c, y): float(w[[i for i in range(110) if corpora[i] == c and labels[i] == y]].sum())
              for c, y in {(c, y) for c, y in zip(corpora, labels, strict=True)}}
    assert len({round(v, 4) for v in totals.values()}) == 1, totals
    assert float(w.mean()) == pytest.approx(1.0)


def offset_speakers(n_speakers: int, seed: int) -> tuple[torch.Tensor, list[int], list[str]]:
    """Clips whose descriptors are a speaker offset (large) plus a class direction (small) plus noise."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.eye(6, 8) * 1.5
    x, y, spk = [], [], []
    for s in range(n_speakers):
        offset = torch.randn(8, generator=g) * 4
        for label in range(6):
            for _ in range(5):
                x.append(offset + directions[label] + torch.randn(8, generator=g) * 0.5)
                y.append(label)
                spk.append(f"s{seed}-{s}")
    return torch.stack(x), y, spk


def test_standardising_by_the_recording_set_recovers_emotions_of_unseen_speakers(tmp_path) -> None:
    x, y, spk = offset_speakers(12, seed=0)
    cfg = descriptors_only(epochs=60, lr=1e-2, dropout=0.0, level_free_clips=False)
    model = fit(x, y, ["train"] * len(y), spk, cfg)
    xt, yt, st = offset_speakers(1, seed=1)  # a new speaker, far from every training voice
    by_set = model.probs(xt, ["set"] * len(yt)).argmax(1)
    alone = model.probs(xt).argmax(1)  # the clip heads, on the training pool's statistics
    assert torch.equal(model.probs(xt[:9], ["set"] * 9), model.probs(xt[:9]))  # under min_group: clip by clip
    acc_set = float((by_set == torch.tensor(yt)).float().mean())
    acc_alone = float((alone == torch.tensor(yt)).float().mean())
    assert acc_set > 0.8 and acc_set > acc_alone + 0.4, (acc_set, acc_alone)  # chance: 0.17
    save_travel(model, tmp_path / "m", {"trained_on": {"train": len(y)}})
    loaded, info = load_travel(tmp_path / "m")
    assert info["trained_on"] == {"train": len(y)}
    assert torch.equal(loaded.probs(xt, ["set"] * len(yt)), model.probs(xt, ["set"] * len(yt)))


def test_shrunk_statistics_follow_the_prior_formula() -> None:
    x = torch.tensor([[0.0], [2.0], [10.0], [14.0], [12.0], [20.0]])
    groups = ["a", "a", "b", "b", "b", "b"]
    assert torch.equal(shrunk_standardise(x, groups, 0), standardise(x, groups))
    mu_set, var_set = 9.666667, float(x.var(unbiased=False))
    # group a: 2 clips (mean 1, variance 1) shrunk by a prior worth 4 clips of the set
    mu, var = (2 * 1 + 4 * mu_set) / 6, (2 * 1 + 4 * var_set) / 6
    z = shrunk_standardise(x, groups, 4)
    assert torch.allclose(z[:2, 0], (x[:2, 0] - mu) / var ** 0.5, atol=1e-5)
    # a huge prior is the whole set's standardisation
    assert torch.allclose(shrunk_standardise(x, groups, 1e9), standardise(x, ["set"] * 6), atol=1e-4)


def test_a_speaker_who_keeps_to_one_emotion_keeps_it_with_the_prior() -> None:
    """Per-speaker statistics remove the emotion of a speaker heard in one mood (talk-show guests); shrunk
    toward the set's they keep it, and offset voices heard in every mood are still standardised away."""
    x, y, spk = offset_speakers(12, seed=0)
    cfg = descriptors_only(epochs=60, lr=1e-2, dropout=0.0, level_free_clips=False)
    model = fit(x, y, ["train"] * len(y), spk, cfg)
    g = torch.Generator().manual_seed(5)
    directions = torch.eye(6, 8) * 1.5
    xt = torch.stack([directions[s] + torch.randn(8, generator=g) * 0.5 for s in range(6) for _ in range(12)])
    yt = torch.tensor([s for s in range(6) for _ in range(12)])
    one_mood = [f"guest{s}" for s in range(6) for _ in range(12)]  # speaker s is only ever in emotion s
    xo, yo, so = offset_speakers(3, seed=2)  # offset voices, every emotion

    def accuracy(prior: float, xs: torch.Tensor, ys: torch.Tensor, speakers: list[str]) -> float:
        model.cfg = replace(model.cfg, speaker_prior=prior)
        return float((model.probs(xs, speakers).argmax(1) == ys).float().mean())

    per_speaker, shrunk = accuracy(0, xt, yt, one_mood), accuracy(10, xt, yt, one_mood)
    assert per_speaker < 0.4 and shrunk > per_speaker + 0.3, (per_speaker, shrunk)
    assert accuracy(10, xo, torch.tensor(yo), so) > 0.75
    assert accuracy(1e9, xo, torch.tensor(yo), so) < accuracy(10, xo, torch.tensor(yo), so) - 0.2


def test_level_free_descriptors_are_the_same_at_any_gain_and_only_the_level_ones_move() -> None:
    import math

    from w2v2.emotion.descriptors import LOUDNESS_LEVELS, MEL_MEANS, MFCC0_MEAN, clip_descriptors, level_free

    t = torch.arange(32000) / 16000
    f0 = 140 + 30 * torch.sin(2 * math.pi * 1.5 * t)  # a gliding voice with harmonics, syllables of 0.25 s
    phase = 2 * math.pi * torch.cumsum(f0, 0) / 16000
    wave = sum(torch.sin(k * phase) / k for k in range(1, 12)) * (0.6 + 0.4 * torch.sin(2 * math.pi * 4 * t)).clamp(0)
    wave = 0.1 * wave + 0.001 * torch.randn(32000, generator=torch.Generator().manual_seed(0))
    base = clip_descriptors(wave)
    level = set(LOUDNESS_LEVELS) | {MFCC0_MEAN} | set(range(189)[MEL_MEANS])
    for gain in (0.01, 3.0):
        moved = clip_descriptors(wave * gain)
        shift = 2 * math.log(gain)
        changed = {i for i in range(189) if abs(float(moved[i] - base[i])) > 1e-3 * (1 + abs(float(base[i])))}
        assert changed <= level, sorted(changed - level)  # nothing else depends on the recording's level
        assert float(moved[3] - base[3]) == pytest.approx(shift, abs=1e-3)
        assert float(moved[MFCC0_MEAN] - base[MFCC0_MEAN]) == pytest.approx(math.sqrt(40) * shift, abs=1e-2)
        assert torch.allclose(level_free(moved), level_free(base), atol=1e-4)
    assert float(level_free(base)[3]) == 0.0
    with pytest.raises(ValueError, match="8 descriptors, not 189"):
        level_free(torch.zeros(2, 8))


def test_a_model_saved_before_level_free_clips_loads_with_absolute_levels(tmp_path) -> None:
    import json

    x, y, spk = offset_speakers(3, seed=0)
    model = fit(x, y, ["train"] * len(y), spk, descriptors_only(epochs=1, level_free_clips=False))
    save_travel(model, tmp_path / "m", {})
    info = json.loads((tmp_path / "m" / "travel.json").read_text())
    del info["config"]["level_free_clips"]  # as an earlier release wrote it
    (tmp_path / "m" / "travel.json").write_text(json.dumps(info))
    loaded, _ = load_travel(tmp_path / "m")
    assert loaded.cfg.level_free_clips is False
    assert torch.equal(loaded.probs(x), model.probs(x))


def test_a_model_is_given_the_descriptors_of_its_own_log_floor(tmp_path) -> None:
    """A model saved before log_floor existed was trained on descriptors at 1e-10: it loads with that floor,
    and the recogniser computes its descriptors with it (the shipped floor for the models trained now)."""
    import json

    from w2v2.data.audio import load_audio
    from w2v2.emotion.descriptors import FLOOR, clip_descriptors
    from w2v2.emotion.recognizer import EmotionRecognizer, TravelMember

    x, y, spk = offset_speakers(3, seed=0)
    x = torch.cat([x, torch.randn(len(x), 181, generator=torch.Generator().manual_seed(0))], 1)  # 189 descriptors
    model = fit(x, y, ["train"] * len(y), spk, descriptors_only(epochs=1))
    assert model.cfg.log_floor == FLOOR == 1e-2
    save_travel(model, tmp_path / "m", {})
    info = json.loads((tmp_path / "m" / "travel.json").read_text())
    del info["config"]["log_floor"]  # as an earlier release wrote it
    (tmp_path / "m" / "travel.json").write_text(json.dumps(info))
    old, _ = load_travel(tmp_path / "m")
    assert old.cfg.log_floor == 1e-10
    wave = load_audio("examples/speech.wav")
    rec = EmotionRecognizer([TravelMember(tmp_path / "m")], "m", torch.device("cpu"))
    said = rec.clip_probs([wave])[0][0]
    assert torch.allclose(said, old.probs(clip_descriptors(wave, 1e-10)[None])[0], atol=1e-6)
    assert not torch.allclose(said, old.probs(clip_descriptors(wave, FLOOR)[None])[0], atol=1e-4)


def test_the_log_floor_keeps_a_low_bitrate_mp3_close_to_its_source() -> None:
    """A low-bitrate MP3 zeroes whole bands in some frames; with the floor at 1e-10 those read as -100 dB swings
    and the mel bands' spreads move most (a neutral clip had become "angry"). At FLOOR they move less."""
    import io

    import soundfile as sf

    from w2v2.data.audio import load_audio
    from w2v2.emotion.descriptors import FLOOR, clip_descriptors

    wave = load_audio("examples/speech.wav")
    buf = io.BytesIO()
    sf.write(buf, wave.numpy(), 16000, format="MP3")  # libsndfile's default: about 25 kbps at 16 kHz
    buf.seek(0)
    mp3 = torch.from_numpy(sf.read(buf, dtype="float32")[0])[: wave.numel()]
    mel_sds = slice(143, 183)
    moved = {f: float((clip_descriptors(wave, f) - clip_descriptors(mp3, f))[mel_sds].abs().mean())
             for f in (1e-10, FLOOR)}
    assert moved[FLOOR] < 0.75 * moved[1e-10]


def test_a_recording_counts_once_however_many_windows_it_is_cut_into() -> None:
    x, y, spk = offset_speakers(12, seed=0)
    model = fit(x, y, ["train"] * len(y), spk, descriptors_only(epochs=5, level_free_clips=False))
    xt, _, _ = offset_speakers(1, seed=1)
    xt = xt[:12]  # twelve recordings of one window each
    once = model.probs(xt, ["set"] * 12)
    # the first recording cut into 7 windows (the same window 7 times): the others' answers do not move
    long = torch.cat([xt[:1].repeat(7, 1), xt[1:]])
    cut = model.probs(long, ["set"] * 18, [0] * 7 + list(range(1, 12)))
    assert torch.allclose(cut[7:], once[1:], atol=1e-6)
    assert torch.allclose(cut[:7], once[:1].expand(7, -1), atol=1e-6)
    # counted as 18 recordings, the long one would have outweighed the rest
    assert not torch.allclose(model.probs(long, ["set"] * 18)[7:], once[1:], atol=1e-3)
    # one recording of 22 windows is no set: its windows are not each other's norm
    windows = xt[:1].repeat(22, 1) + torch.randn(22, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.probs(windows, ["set"] * 22, [0] * 22), model.probs(windows))
    # nor are nine recordings (min_group 10), however many windows they have
    nine = torch.cat([windows, xt[1:9]])
    assert torch.equal(model.probs(nine, ["set"] * 30, [0] * 22 + list(range(1, 9))), model.probs(nine))
    with pytest.raises(ValueError, match="recordings"):
        model.probs(xt, ["set"] * 12, [0])


def test_a_small_set_is_hedged_with_the_clip_heads_by_its_size() -> None:
    """A set of N recordings: N / (N + set_prior) from the set heads, the rest from the lone-clip heads."""
    x, y, spk = offset_speakers(12, seed=0)
    model = fit(x, y, ["train"] * len(y), spk, descriptors_only(epochs=5, level_free_clips=False))
    xt, _, _ = offset_speakers(1, seed=1)
    alone = model.probs(xt)
    plain = replace(model.cfg, set_prior=0.0)
    for n in (10, 30):
        model.cfg = plain
        by_set = model.probs(xt[:n], ["set"] * n)
        model.cfg = replace(plain, set_prior=10.0)
        hedged = model.probs(xt[:n], ["set"] * n)
        w = n / (n + 10)
        assert torch.allclose(hedged, w * by_set + (1 - w) * alone[:n], atol=1e-6)
        assert not torch.allclose(hedged, by_set, atol=1e-3)
        assert torch.allclose(hedged.sum(1), torch.ones(n), atol=1e-5)
    # N counts recordings: the first recording cut into 7 windows leaves the weight at 10 / 20
    model.cfg = replace(plain, set_prior=10.0)
    long = torch.cat([xt[:1].repeat(7, 1), xt[1:10]])
    cut = model.probs(long, ["set"] * 16, [0] * 7 + list(range(1, 10)))
    assert torch.allclose(cut[7:], model.probs(xt[:10], ["set"] * 10)[1:], atol=1e-6)



def acted_without_neutral_and_read_speech(seed: int) -> tuple:
    """An acted corpus of every emotion but neutral, and read speech of 20 other voices: each voice at its own
    offset, the read clips with no emotion's direction (as neutral clips are made in `offset_speakers`)."""
    x, y, spk = offset_speakers(12, seed=seed)
    keep = [i for i, label in enumerate(y) if label != 4]
    g = torch.Generator().manual_seed(seed + 100)
    read = torch.cat([o + torch.randn(10, 8, generator=g) * 0.5 for o in torch.randn(20, 1, 8, generator=g) * 4])
    readers = [f"reader{r}" for r in range(20) for _ in range(10)]
    return x[keep], [y[i] for i in keep], [spk[i] for i in keep], read, readers


def test_read_speech_teaches_the_set_heads_neutral_and_is_the_lone_clips_reference() -> None:
    x, y, spk, read, readers = acted_without_neutral_and_read_speech(0)
    cfg = descriptors_only(epochs=40, lr=1e-2, dropout=0.0, level_free_clips=False)
    plain = fit(x, y, ["acted"] * len(y), spk, cfg)
    with_read = fit(x, y, ["acted"] * len(y), spk, cfg, read, readers)
    unused = fit(x, y, ["acted"] * len(y), spk, replace(cfg, neutral_weight=0.0), read, readers)
    xt, yt_list, _ = offset_speakers(1, seed=7)  # a new speaker in all six emotions
    yt = torch.tensor(yt_list)
    neutral = yt == 4
    p_plain, p_read = plain.probs(xt, ["set"] * len(yt)), with_read.probs(xt, ["set"] * len(yt))
    assert float((p_plain.argmax(1)[neutral] == 4).float().mean()) == 0.0  # never heard neutral: never says it
    assert float((p_read.argmax(1)[neutral] == 4).float().mean()) >= 0.8
    assert float(p_read[neutral, 4].mean()) > 2 * float(p_plain[neutral, 4].mean())
    # the emotions it knew are still told apart (chance 0.2), though less often (neutral takes some of them)
    assert float((p_read.argmax(1)[~neutral] == yt[~neutral]).float().mean()) >= 0.4
    # a lone clip is standardised by the read speech's statistics; the lone-clip heads never learn its clips:
    # with the pool as the reference they are the plain model's, and weight 0 changes only that reference
    assert torch.allclose(with_read.pool_mean, read.mean(0)) and torch.allclose(with_read.pool_std,
                                                                                 read.std(0, unbiased=False))
    pooled = fit(x, y, ["acted"] * len(y), spk, replace(cfg, clip_reference="pool"), read, readers)
    assert torch.equal(plain.pool_mean, pooled.pool_mean) and torch.equal(plain.pool_std, pooled.pool_std)
    assert all(torch.equal(p, q) for p, q in zip(plain.clip_heads.parameters(), pooled.clip_heads.parameters(),
                                                 strict=True))
    assert all(torch.equal(p, q) for p, q in zip(plain.set_heads.parameters(), unused.set_heads.parameters(),
                                                 strict=True))  # weight 0: the set heads as without it
    assert torch.equal(unused.pool_mean, with_read.pool_mean)  # still the lone clips' reference
    with pytest.raises(ValueError, match="clip_reference='speech'"):
        fit(x, y, ["acted"] * len(y), spk, replace(cfg, clip_reference="speech"))
    with pytest.raises(ValueError, match="one entry per clip"):
        fit(x, y, ["acted"] * len(y), spk, cfg, read, readers[:-1])


def test_read_speech_voices_of_one_clip_are_standardised_together_not_to_zeros() -> None:
    assert voice_groups(["a", "a", "b", "c"]) == ["a", "a", "voices of one clip", "voices of one clip"]
    x = torch.tensor([[1.0], [3.0], [5.0], [9.0]])
    z = standardise(x, voice_groups(["a", "a", "b", "c"]))
    assert torch.all(z[2:] != 0) and torch.allclose(z[2:, 0], torch.tensor([-1.0, 1.0]))
    assert torch.all(standardise(x, ["a", "a", "b", "c"])[2:] == 0)  # each alone: zeros, as before
