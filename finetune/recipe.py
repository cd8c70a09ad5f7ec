"""`python -m finetune train`: the recipe, an ensemble of members trained one after another.

Design choices:
- a member is a unit (a seed, or a speaker-disjoint fold) and a kind (`FinetuneConfig.kinds`: a fine-tune
  of the init, a linear probe on its frozen backbone, the tiny model from scratch, linear heads over acoustic
  descriptors standardised per speaker (`finetune.descriptor_head`)). A seed chooses its
  own validation speakers (`speaker_split` with that seed), so members differ in data as well as in
  initialisation; the kinds of one unit share its split;
- every member is a complete run folder (`member_2/`, `member_2_probe/`, `fold_1_scratch/`), so
  evaluate, predict and submit take one member, or the parent for all of them (`w2v2.emotion.members`);
- the parent's submission.csv and test_probs.csv average the members' test probabilities (soft voting),
  each kind weighted as its members predicted their validation clips (`finetune.weights`, ensemble.json);
  with folds, oof_probs.csv averages each clip's out-of-fold probabilities over the kinds; with seeds, the
  parent's val_probs.csv averages each seed's kinds on that seed's validation clips: the ensemble's own
  validation estimate, one seed at a time (`outputs.seed_validation`);
- a single member (one seed, one kind) is written straight into the run folder: a plain run;
- before any training the plan is printed with a time estimate from a few timed steps on this machine,
  and one progress bar covers every member.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from finetune.config import FinetuneConfig, Kind, scratch_config
from finetune.descriptor_head import train_descriptors
from finetune.folds import assign_folds, out_of_fold, read_probs, validation_words
from finetune.metrics import HEADLINE
from finetune.model import check_model
from finetune.outputs import frame_metrics, seed_validation, start_run, write_csv, write_json, write_test_outputs
from finetune.parallel import available_bytes, plan_workers, run_side_by_side, together
from finetune.plots import plot_confusion
from finetune.probe import train_probe
from finetune.train import split_train, train
from finetune.weights import fit_ensemble, unit_weights
from w2v2.config import to_dict
from w2v2.data.audio import SAMPLE_RATE
from w2v2.data.datasets import Dataset, Item
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.members import KINDS_BY_SUFFIX, member_weights
from w2v2.emotion.windows import AudioCache
from w2v2.model import Wav2Vec2ForClassification
from w2v2.training import resolve_amp, resolve_device
from w2v2.training.progress import no_progress, progress_bar

RECIPE = "recipe.json"  # the run's config, data and plan (train --resume)
KIND_WORDS = {"finetune": "fine-tune", "probe": "linear probe", "scratch": "tiny model",
              "descriptors": "descriptors head"}  # a member of each kind
SUFFIX = {kind: suffix or "" for suffix, kind in KINDS_BY_SUFFIX.items()}  # a member's folder name ends in it
CHEAP: tuple[Kind, ...] = ("probe", "descriptors")  # minutes at most: trained last, to fill the pool's gaps


@dataclass(frozen=True)
class Member:
    name: str  # its folder under the run
    kind: Kind
    cfg: FinetuneConfig
    train_items: list[Item]
    val_items: list[Item]
    fold: int | None = None  # 0-based, for out-of-fold probabilities


def member_config(cfg: FinetuneConfig, kind: Kind, seed: int) -> FinetuneConfig:
    """The config one member trains with: the run's, or for `scratch` the scratch recipe with the run's
    device, precision and evaluation settings."""
    if kind != "scratch" or cfg.init == "scratch":
        return replace(cfg, seed=seed)
    return scratch_config(cfg, seed)


def plan_members(data: Dataset, cfg: FinetuneConfig, val_speakers: list[str] | None) -> tuple[list[Member], str]:
    """The members of the run and how their validation clips were chosen."""
    kinds = [k for k in dict.fromkeys(cfg.kinds) if not (k == "probe" and cfg.init == "scratch")]
    if not kinds:
        raise ValueError("--probe judges a pretrained backbone: give --init pretrained:NAME, hf:DIR_OR_ID or ckpt:PATH")
    suffix = SUFFIX
    members = []
    if cfg.folds:
        if val_speakers:
            raise ValueError("--folds chooses the validation speakers of every fold: drop --val-speakers")
        if len(data.train) < cfg.folds:
            raise ValueError(f"{data.root}: {len(data.train)} labelled clips are too few for {cfg.folds} folds")
        fold_of, how = assign_folds(data.train, cfg.folds, cfg.seed)
        for f in range(cfg.folds):
            val = [it for it, g in zip(data.train, fold_of, strict=True) if g == f]
            train_items = [it for it, g in zip(data.train, fold_of, strict=True) if g != f]
            if not val:
                raise ValueError(f"fold {f + 1} of {cfg.folds} would validate no clip: use fewer folds")
            members += [Member(f"fold_{f + 1}{suffix[k]}", k, member_config(cfg, k, cfg.seed), train_items, val, f)
                        for k in kinds]
        return members, f"{cfg.folds} folds ({how})"
    for m in range(cfg.members):
        seed = cfg.seed + m
        train_items, val = split_train(data, replace(cfg, seed=seed), val_speakers)
        name = f"member_{m + 1}" if cfg.members > 1 or len(kinds) > 1 else ""
        members += [Member(f"{name}{suffix[k]}".lstrip("_"), k, member_config(cfg, k, seed), train_items, val)
                    for k in kinds]
    shares = [len(m.val_items) / len(data.train) for m in members]
    words = validation_words(data.train, cfg.val_fraction, val_speakers, shares=shares)
    return members, f"{cfg.members} seed(s), each validating on {words}"


def member_steps(member: Member) -> int:
    """Work units of a member on the progress bar: training steps of a fine-tune, batches of a probe's
    feature pass or of a descriptors member's clips."""
    batches = math.ceil(len(member.train_items) / member.cfg.batch_size)
    return batches if member.kind in CHEAP else member.cfg.max_steps or member.cfg.epochs * batches


def clip_durations(items: list[Item]) -> list[float] | None:
    """Each item's duration from its header, without decoding (None where any is unknown)."""
    try:
        import soundfile as sf

        return [sf.info(str(it.path)).duration for it in items]
    except Exception:  # noqa: BLE001 - an estimate only: unreadable files are reported by the run itself
        return None


def audio_hours(items: list[Item]) -> float | None:
    """Hours of audio of items whose length is known without decoding (None where any is not)."""
    seconds = clip_durations(items)
    return None if seconds is None else sum(seconds) / 3600


def fit_crops(members: list[Member], longest: float) -> list[Member]:
    """Members whose crop is longer than the longest training clip crop to that clip's length instead, and
    whose batch is larger than their training set take the set: the same training (a batch is padded to its
    longest clip, never to the crop, and holds at most every clip), and the timing step allocates what
    training will (crop_seconds=100000, "no cropping", once asked for a 51 GB batch). Then the batch is held
    to this machine's free memory (`check_memory`)."""
    fitted = []
    for m in members:
        if m.kind == "descriptors":  # no network, no crops: whole clips
            fitted.append(m)
            continue
        if m.cfg.crop_seconds > longest:
            print(f"      {m.name or m.kind}: crop_seconds={m.cfg.crop_seconds:g} is longer than the longest training "
                  f"clip ({longest:.1f} s): whole clips, crops of at most {math.ceil(longest):g} s")
            m = replace(m, cfg=replace(m.cfg, crop_seconds=float(math.ceil(longest))))
        if m.train_items and m.cfg.batch_size > len(m.train_items):
            m = replace(m, cfg=replace(m.cfg, batch_size=len(m.train_items)))
        check_memory(m)
        fitted.append(m)
    return fitted


def check_memory(m: Member) -> None:
    """ValueError before anything is allocated when one batch of crops would not fit in free memory: the CNN's
    first layer alone holds batch x samples x (channels / stride) floats, twice over in a training step."""
    model = check_model(m.cfg)  # the config alone, no weights
    samples = m.cfg.batch_size * int(m.cfg.crop_seconds * SAMPLE_RATE)
    need = samples * 4 * 2 * model.encoder.conv_dim[0] / model.encoder.conv_stride[0]
    free = available_bytes()
    if free is not None and need > free:
        raise ValueError(f"{m.name or m.kind}: batch_size={m.cfg.batch_size} x crop_seconds={m.cfg.crop_seconds:g} "
                         f"needs about {need / 2**30:.1f} GB for one batch; this machine has {free / 2**30:.1f} GB "
                         "free: lower batch_size or crop_seconds")


@torch.no_grad()
def _cnn_seconds(model: Wav2Vec2ForClassification, wave: torch.Tensor) -> float:
    """Seconds of one no-grad pass of the CNN alone over wave (b, s): what the feature cache costs."""
    model.eval()
    tick = time.perf_counter()
    model.backbone.encode(wave)
    return time.perf_counter() - tick


class _Quiet:
    """A stand-in for the run's progress bar while steps are timed: nothing shown, nothing counted."""

    def write(self, text: str) -> None:
        pass

    def update(self, n: float = 1) -> None:
        pass


def time_member(cfg: FinetuneConfig, kind: Kind, items: list[Item], steps: int = 4) -> dict[str, float]:
    """Seconds on this machine, timed through the member's own code on a few of its clips: `step`, one
    training step (decoding, augmentation, crops, the cached CNN features where the run caches them,
    masking, loss, clipping, the optimizer; the faster of two epochs of `steps` batches after one to
    warm up); `val` and `predict`, per second of audio, an epoch's validation (on cached features where
    the run caches them) and the final predictions; `cnn`, per second of audio, the CNN alone (the
    feature cache). Synthetic steps on random audio had missed a third of a real step and half of the
    validation (docs/recipe.md)."""
    device = resolve_device(cfg.device)
    cfg = replace(cfg, init="scratch") if kind == "scratch" else cfg
    sample = items[:: max(1, len(items) // (cfg.batch_size * steps))][: cfg.batch_size * steps]
    if kind == "descriptors":
        return _timed_descriptors(sample)
    with no_progress():  # what is only timed shows no bar and no line
        return _timed(cfg, kind, sample, device)


def _timed_descriptors(sample: list[Item]) -> dict[str, float]:
    """A descriptors member's cost per second of audio: its descriptors (training, validation and test
    alike; the heads' training and the speech detector are cheap beside them), timed on a few clips."""
    from w2v2.emotion.descriptors import clip_descriptors

    cache = AudioCache(sample)
    waves = [w for w in (cache[i] for i in range(len(sample))) if w is not None]
    if waves:
        clip_descriptors(waves[0])  # warm-up
    tick = time.perf_counter()
    for w in waves:
        clip_descriptors(w)
    rate = (time.perf_counter() - tick) / max(sum(w.numel() for w in waves) / SAMPLE_RATE, 1e-9)
    return {"step": 0.0, "cnn": 0.0, "val": rate, "predict": rate}


def _timed(cfg: FinetuneConfig, kind: Kind, sample: list[Item], device: torch.device) -> dict[str, float]:
    from finetune.train import prepare_fit, train_epoch, validate

    cache = AudioCache(sample)
    with contextlib.redirect_stdout(io.StringIO()):  # its "feature cache: ..." line belongs to the run
        fit, features, _ = prepare_fit(cfg, sample, cache, _Quiet())
    audio = sum(w.numel() for w in (cache[i] for i in range(len(sample))) if w is not None) / SAMPLE_RATE
    rate = {}
    for name, cached in (("val", features), ("predict", None)):
        validate(fit.model, sample, cache, cached, cfg.window_seconds, "timing", "")  # warm-up
        tick = time.perf_counter()
        validate(fit.model, sample, cache, cached, cfg.window_seconds, "timing", "")
        rate[name] = (time.perf_counter() - tick) / max(audio, 1e-9)
    crop = int(cfg.crop_seconds * SAMPLE_RATE)
    wave = torch.randn(cfg.batch_size, crop, generator=torch.Generator().manual_seed(0)).to(device)
    cnn = min(_cnn_seconds(fit.model, wave) for _ in range(2)) / (cfg.batch_size * cfg.crop_seconds)
    if kind == "probe":
        return {"step": 0.0, "cnn": cnn, **rate}
    train_epoch(fit, 0, 1)  # warm-up: the first steps allocate
    per_step = []
    for epoch in (2, 3):  # the faster of two epochs: one slow step (another process, a page fault) is not the rule
        tick = time.perf_counter()
        _, done, _ = train_epoch(fit, 0, epoch)
        per_step.append((time.perf_counter() - tick) / max(done, 1))
    return {"step": min(per_step), "cnn": cnn, **rate}


def timing_key(m: Member) -> tuple:
    """Members with the same key cost the same per step: one timing serves them all."""
    return (m.kind, m.cfg.init, m.cfg.freeze_feature_encoder)


def _time_task(cfg: FinetuneConfig, kind: Kind, items: list[Item], bar: Any) -> dict[str, float]:
    together()  # the copies of a kind start at once, one per worker, as the run's members will share the cores
    return time_member(cfg, kind, items) | {"pid": float(os.getpid())}


def time_side_by_side(members: list[Member], timings: dict[tuple, dict[str, float]]) -> None:
    """Where members will train `workers` at a time, time each kind `workers` times at once in worker
    processes, as the run will share the cores, and keep the copies' mean in `timings`. Timed alone on an
    idle machine, a 2-core run's members came out 5-30% slower than their estimate (docs/recipe.md)."""
    workers, threads = members[0].cfg.workers, members[0].cfg.threads
    todo = {timing_key(m): m for m in members if timing_key(m) not in timings}
    if workers < 2 or len(members) < 2 or not todo:
        return
    tasks = [(f"{i}:{j}", _time_task, (m.cfg, m.kind, m.train_items)) for i, m in enumerate(todo.values())
             for j in range(workers)]
    results = run_side_by_side(tasks, workers, threads, _Quiet(), gated=True)
    for i, key in enumerate(todo):
        runs = [results[f"{i}:{j}"] for j in range(workers)]
        timings[key] = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0] if k != "pid"}
        timings[key]["side_by_side"] = len({r["pid"] for r in runs})


def estimate_seconds(members: list[Member], test_seconds: float, clip_seconds: float,
                     timings: dict[tuple, dict[str, float]] | None = None) -> float:
    """Estimated wall time of all members, `workers` at a time (each taking the next member when it is
    free, as the pool does): per kind, a few timed steps (`time_member`, kept in `timings` for the next
    call) scaled by the work."""
    timings = {} if timings is None else timings
    each = [member_seconds(m, test_seconds, clip_seconds, timings)
            for m in sorted(members, key=lambda m: m.kind in CHEAP)]  # the order the pool takes them in
    free = [0.0] * max(1, max((m.cfg.workers for m in members), default=1))
    for seconds in each:
        free[free.index(min(free))] += seconds
    return max(free)


def member_seconds(m: Member, test_seconds: float, clip_seconds: float, timings: dict[tuple, dict[str, float]]
                   ) -> float:
    """Estimated wall time of one member (its timed steps, by kind, kept in `timings`)."""
    key = timing_key(m)
    if key not in timings:
        timings[key] = time_member(m.cfg, m.kind, m.train_items)
    t = timings[key]
    train_audio, val_audio = len(m.train_items) * clip_seconds, len(m.val_items) * clip_seconds
    predict = (val_audio + test_seconds) * t["predict"]  # finish(): validation and test predictions
    if m.kind in CHEAP:  # one feature pass over its clips (a prediction's cost), then a cheap head
        return (train_audio + val_audio) * t["predict"] + predict
    cached = m.cfg.freeze_feature_encoder and m.cfg.feature_cache
    views = (m.cfg.cache_views if m.cfg.augment else 1) if cached else 0
    per_epoch = math.ceil(len(m.train_items) / m.cfg.batch_size) * t["step"] + val_audio * t["val"]
    return (views * train_audio + val_audio) * t["cnn"] * bool(cached) + m.cfg.epochs * per_epoch + predict


def seeds_said(how: str, members: list[Member]) -> str:
    """`how` with the number of seeds the members have (a budget may have dropped some)."""
    seeds = len({m.cfg.seed for m in members})
    return re.sub(r"^\d+ seed\(s\)", f"{seeds} seed(s)", how) if members and members[0].fold is None else how


def print_plan(data: Dataset, cfg: FinetuneConfig, members: list[Member], how: str) -> list[Member]:
    """Print what will be trained and what it will cost; with `budget_minutes`, first fewer seeds, then
    fewer epochs, until the estimate fits. Returns the members to train."""
    seconds = clip_durations(data.train)
    hours = None if seconds is None else sum(seconds) / 3600
    if seconds:
        members = fit_crops(members, max(seconds))
    test_hours = audio_hours(data.test) if data.test else 0.0
    estimate = one = None
    if hours is not None and test_hours is not None:
        timings: dict[tuple, dict[str, float]] = {}
        clip_seconds, test_seconds = hours * 3600 / max(len(data.train), 1), test_hours * 3600
        estimate = lambda ms: estimate_seconds(ms, test_seconds, clip_seconds, timings)  # noqa: E731
        one = lambda m: member_seconds(m, test_seconds, clip_seconds, timings)  # noqa: E731
        time_side_by_side(members, timings)
        if cfg.budget_minutes:
            members = fit_budget(members, cfg, estimate)
    kinds = {k: sum(m.kind == k for m in members) for k in SUFFIX}
    words = {"finetune": f"fine-tune(s) of {cfg.init}", "probe": "linear probe(s)",
             "scratch": "tiny model(s) from scratch", "descriptors": "descriptors head(s)"}
    how = seeds_said(how, members)
    print(f"plan: {' + '.join(f'{n} {words[k]}' for k, n in kinds.items() if n)} ({how}); "
          f"{len(data.train)} labelled clips{f' ({hours:.2f} h)' if hours is not None else ''}"
          + (f", {len(data.test)} test clips" if data.test else ""))
    # each kind reads its own epochs setting: the plan names it, so `epochs=1` is seen to change the fine-tunes only
    for kind, title, key in (("finetune", "fine-tuning", "epochs"), ("scratch", "tiny from scratch", "scratch.epochs")):
        ft = next((m for m in members if m.kind == kind), None)
        if ft is not None:
            print(f"      {title}: {ft.cfg.epochs} epochs ({key}; patience {ft.cfg.patience}) of "
                  f"{ft.cfg.crop_seconds:g} s crops, batch {ft.cfg.batch_size}, "
                  f"CNN {'frozen' if ft.cfg.freeze_feature_encoder else 'trained'}")
    probe = next((m for m in members if m.kind == "probe"), None)
    if probe is not None:
        print(f"      linear probe: {probe.cfg.probe_epochs} epochs of the head over cached features (probe_epochs)")
    if any(m.kind == "descriptors" for m in members):
        print("      descriptors head: linear heads over 189 acoustic descriptors of each clip, standardised per "
              "speaker (where the data names them), as the travelling model's")
    if len(members) > 1 and members[0].cfg.workers > 1:
        print(f"      side by side: {members[0].cfg.workers} members at a time, {members[0].cfg.threads} thread(s) "
              "each (workers, threads)")
    if estimate is not None and one is not None:
        device = resolve_device(cfg.device)
        print(f"      estimate: {minutes_text(estimate(members))} min on this machine ({device}, "
              f"{resolve_amp(cfg.amp, device).replace('none', 'fp32')} training steps, "
              f"{torch.get_num_threads()} thread(s)), "
              "from a few timed steps", flush=True)
        per_kind = {m.kind: one(m) for m in members}
        print("      per member: " + ", ".join(f"{KIND_WORDS[k]} {minutes_text(v)} min" for k, v in per_kind.items()),
              flush=True)
        stops = {m.kind: m.cfg.patience for m in members if m.kind not in CHEAP and m.cfg.patience < m.cfg.epochs}
        if stops:  # the default's tiny models: 80 epochs, patience 20 (one stopped at 54 on 5,000 clips)
            print("      the estimate counts every epoch; " + ", ".join(
                f"a {KIND_WORDS[k]} stops early after {p} epochs without a better validation UAR"
                for k, p in stops.items()))
        if estimate(members) > LONG_SECONDS and not cfg.budget_minutes:
            print(f"      over {LONG_SECONDS // 60} min: --budget-minutes N fits the run to N minutes (fewer seeds "
                  "first, then fewer epochs; with --dry-run, the plan only)")
    return members


LONG_SECONDS = 3600  # a plan estimated above it names --budget-minutes
FEW_CLIPS = 100  # kind weights fitted on fewer validation clips are said to be uncertain


def minutes_text(seconds: float) -> str:
    """Minutes with one decimal, or two significant digits below a minute: a short run is never "0.0 min"."""
    minutes = seconds / 60
    return f"{minutes:.1f}" if minutes >= 1 else f"{minutes:.2g}"


def fit_budget(members: list[Member], cfg: FinetuneConfig, estimate: Callable[[list[Member]], float]
               ) -> list[Member]:
    """The members within `cfg.budget_minutes` by `estimate`: fewer seeds first (folds stay), then fewer
    epochs (at least 3); the smallest plan if none fits, said in one line."""
    budget = cfg.budget_minutes * 60
    per_unit = len({m.kind for m in members})
    units = 1 if cfg.folds else cfg.members
    for n in range(len(members) // per_unit if not cfg.folds else 1, 0, -1):
        chosen = members if cfg.folds else members[:n * per_unit]
        if estimate(chosen) <= budget:
            if n < units:
                print(f"--budget-minutes {cfg.budget_minutes:g}: {n} of {units} seeds")
            return chosen
    chosen = members if cfg.folds else members[:per_unit]
    for epochs in range(max(m.cfg.epochs for m in chosen) - 1, 2, -1):
        fewer = [replace(m, cfg=replace(m.cfg, epochs=min(epochs, m.cfg.epochs))) for m in chosen]
        if estimate(fewer) <= budget:
            print(f"--budget-minutes {cfg.budget_minutes:g}: {len(fewer) // per_unit} seed(s)/fold(s), "
                  f"{epochs} epochs")
            return fewer
    fewer = [replace(m, cfg=replace(m.cfg, epochs=min(3, m.cfg.epochs))) for m in chosen]
    print(f"--budget-minutes {cfg.budget_minutes:g}: even the smallest plan (3 epochs) is estimated above it")
    return fewer


def write_recipe(run: Path, data: Dataset, cfg: FinetuneConfig, val_speakers: list[str] | None,
                 members: list[Member]) -> None:
    """RUN/recipe.json: what `train --resume` needs to continue the run as it was planned."""
    run.mkdir(parents=True, exist_ok=True)
    recipe = {"config": to_dict(cfg), "data": str(data.root), "layout": data.layout, "val_speakers": val_speakers,
              "plan": {m.name: m.cfg.epochs for m in members}}
    write_json(run / RECIPE, recipe)


def read_recipe(run: Path) -> dict:
    """The recipe.json of a run started by this version of `train` (ValueError naming the run otherwise)."""
    path = run / RECIPE
    if not run.is_dir():
        raise ValueError(f"--resume: {run}: no such folder (--run names the folder of the killed run)")
    if not path.is_file():
        raise ValueError(f"--resume: {run} holds no {RECIPE} (no run was started there by `finetune train`, or it "
                         "was started before runs could resume); start it again with --overwrite")
    return json.loads(path.read_text())


class Session:
    """This session of a run (a first start or a --resume), its wall seconds kept in RUN/recipe.json's
    `sessions` every `beat` seconds by a background thread: a session killed outright (SIGKILL, a lost
    machine) is counted up to its last beat, without trusting file times or clocks. `before` is the seconds of
    the run's earlier sessions (0 for sessions of a run started before they were noted)."""

    def __init__(self, run: Path, beat: float = 30.0) -> None:
        self.run, self.beat = run, beat
        self.sessions: list[dict] = read_recipe(run).get("sessions", [])
        self.before = float(sum(s.get("seconds", 0.0) for s in self.sessions))
        self.sessions.append({"seconds": 0.0})
        self.start = time.perf_counter()
        self.stopped = threading.Event()
        self.note()
        self.thread = threading.Thread(target=self.beating, name="session-clock", daemon=True)
        self.thread.start()

    def note(self) -> float:
        """Write this session's seconds so far into recipe.json; return them. Called by one thread at a time:
        before the beat starts, by the beat, and after it is joined."""
        seconds = time.perf_counter() - self.start
        self.sessions[-1]["seconds"] = seconds
        write_json(self.run / RECIPE, read_recipe(self.run) | {"sessions": self.sessions})
        return seconds

    def beating(self) -> None:
        while not self.stopped.wait(self.beat):
            self.note()

    def end(self) -> tuple[float, int]:
        """Stop the clock: (the run's wall seconds over every session, the number of sessions)."""
        self.stopped.set()
        self.thread.join()
        return self.before + self.note(), len(self.sessions)


def planned_members(data: Dataset, cfg: FinetuneConfig, val_speakers: list[str] | None
                    ) -> tuple[list[Member], str]:
    """The members and how validation was chosen, each member's config saying how many train at once
    (`workers`) with how many threads (`finetune.parallel.plan_workers`)."""
    members, how = plan_members(data, cfg, val_speakers)
    workers, threads = plan_workers(cfg.workers, cfg.threads, len(members), cfg.device)
    if threads:  # the estimate's timed steps run as each member will
        torch.set_num_threads(threads)
    return [replace(m, cfg=replace(m.cfg, threads=threads, workers=workers)) for m in members], how


def dry_run(data: Dataset, cfg: FinetuneConfig, val_speakers: list[str] | None) -> list[Member]:
    """`train --dry-run`: the plan and its estimate (with --budget-minutes, what it cuts), nothing trained."""
    members, how = planned_members(data, cfg, val_speakers)
    members = print_plan(data, cfg, members, how)
    print(f"--dry-run: nothing trained; without --dry-run the same command trains these {len(members)} member(s)")
    return members


def train_recipe(data: Dataset, cfg: FinetuneConfig, run: Path, val_speakers: list[str] | None = None,
                 resume: bool = False) -> dict:
    """Train every member of `cfg`'s recipe under `run` and write the ensemble's outputs; return
    metrics.json's content (a single member's own, where there is one member).

    resume: continue a killed run: finished members are kept, the member in progress continues after its
    last completed epoch (`finetune.state`), the plan (members and epochs) is the one recipe.json saved."""
    members, how = planned_members(data, cfg, val_speakers)
    workers, threads = members[0].cfg.workers, members[0].cfg.threads
    if resume:
        plan = read_recipe(run)["plan"]
        members = [replace(m, cfg=replace(m.cfg, epochs=plan[m.name])) for m in members if m.name in plan]
        done = sum((run / m.name / "metrics.json").is_file() for m in members) if len(members) > 1 else 0
        print(f"resuming {run}: {done} of {len(members)} member(s) finished")
    else:
        members = print_plan(data, cfg, members, how)
        write_recipe(run, data, cfg, val_speakers, members)
    total = sum(member_steps(m) for m in members)
    with progress_bar(total=total, desc="all members", unit="step", disable=None) as bar:
        if len(members) == 1:  # a lone member times its own epochs (its state keeps them across sessions)
            return train_member(data, members[0], run, bar, resume)
        start_run(run, cfg)
        session = Session(run)
        try:
            results = train_all(data, members, run, bar, resume, workers, threads)
        except BaseException:  # Ctrl-C, an error: the session's seconds so far are noted for --resume
            session.end()
            raise
    summary: dict[str, Any] = {"recipe": seeds_said(how, members), "members": results}
    if ensemble := fit_ensemble(run, results):  # the kinds' weights, fitted on their validation clips
        summary["kind_weights"] = ensemble["kind_weights"]
        print("kinds weighed by their validation clips: " + ", ".join(
            f"{KIND_WORDS[k]} {w:.1f}" for k, w in ensemble["kind_weights"].items())
            + " (a kind at 0 has no vote: predict does not run it)")
        if ensemble["clips"] < FEW_CLIPS:
            print(f"      only {ensemble['clips']} validation clips chose these weights: they may not hold on new "
                  "speakers (more seeds or --folds give them more clips)")
    summary |= folds_oof(run, data, members) if cfg.folds else ensemble_validation(run, results)
    if data.test:
        weights = torch.tensor(member_weights(run, [run / m.name for m in members]))
        probs = torch.stack([read_probs(run / m.name / "test_probs.csv") for m in members])
        summary |= write_test_outputs(run, data, torch.einsum("m,mnc->nc", weights / weights.sum(), probs))
    summary["train_seconds"], summary["sessions"] = session.end()  # every session of the run, resumed ones too
    write_json(run / "metrics.json", summary)
    print_members(summary)
    return summary


def train_all(data: Dataset, members: list[Member], run: Path, bar: Any, resume: bool, workers: int, threads: int
              ) -> list[dict]:
    """Every member not finished before (resume), `workers` at a time; each member's row of metrics.json."""
    done: dict[str, dict] = {}
    tasks = []
    for i, m in enumerate(members, start=1):
        finished = run / m.name / "metrics.json"
        if resume and finished.is_file():  # trained before the interruption
            result = json.loads(finished.read_text())  # its time is the one it trained for before the kill
            done[m.name] = {"result": result, "seconds": float(result.get("train_seconds", 0.0))}
            bar.update(member_steps(m))
        else:
            tasks.append((m.name, announced_member, (data, m, f"member {i}/{len(members)}", run / m.name, resume)))
    if workers > 1:  # the probes and descriptors (minutes each) last, to fill the gaps the long members leave
        tasks.sort(key=lambda task: task[2][1].kind in CHEAP)
        done |= run_side_by_side(tasks, workers, threads, bar)
    else:
        done |= {name: task(*args, bar) for name, task, args in tasks}
    return [{"name": m.name, "kind": m.kind, "seed": m.cfg.seed, "best_epoch": r["result"]["best_epoch"],
             "seconds": r["seconds"], "validation": brief(r["result"]["validation"])}
            | ({"test": brief(r["result"]["test"])} if "test" in r["result"] else {})
            for m in members for r in [done[m.name]]]


def announced_member(data: Dataset, m: Member, which: str, folder: Path, resume: bool, bar: Any) -> dict:
    """train_member, said first and timed: {"result": its metrics, "seconds": its wall time}."""
    tick = time.perf_counter()
    bar.write(f"{which}: {m.name} ({m.kind}, seed {m.cfg.seed}): {len(m.train_items)} training / "
              f"{len(m.val_items)} validation clips")
    result = train_member(data, m, folder, bar, resume)
    # a resumed member's own train_seconds count the epochs before the kill too
    return {"result": result, "seconds": max(time.perf_counter() - tick, float(result.get("train_seconds", 0.0)))}


def train_member(data: Dataset, m: Member, folder: Path, bar: Any, resume: bool = False) -> dict:
    """One member into `folder`; resume: a fine-tune continues after its last epoch (a probe, minutes at
    most, starts over)."""
    if m.kind in CHEAP:
        trainer = train_probe if m.kind == "probe" else train_descriptors
        result = trainer(data, m.cfg, folder, m.train_items, m.val_items)
        bar.update(member_steps(m))
        return result
    return train(data, m.cfg, folder, split=(m.train_items, m.val_items), overall=bar, resume=resume)


def brief(metrics: dict) -> dict:
    return {k: metrics[k] for k in (*HEADLINE, "n")}


def ensemble_validation(run: Path, results: list[dict]) -> dict:
    """val_probs.csv, confusion_matrix.png and metrics of each seed's ensemble on that seed's own validation
    clips (`seed_validation`): the pooled metrics as `validation`, each seed's as `validation_seeds`."""
    frame = seed_validation(run, results)
    if frame is None:
        return {}
    write_csv(frame, run / "val_probs.csv")
    pooled = frame_metrics(frame)
    plot_confusion(pooled["confusion_matrix"], list(EMOTIONS), run / "confusion_matrix.png",
                   f"validation, each seed's ensemble (UAR {pooled['uar']:.3f})")
    seeds = {str(s): brief(frame_metrics(g)) for s, g in frame.groupby("seed")}
    return {"validation": pooled, "validation_seeds": seeds}


def folds_oof(run: Path, data: Dataset, members: list[Member]) -> dict:
    """oof_probs.csv and metrics: each training clip's validation probabilities, averaged over its fold's kinds."""
    fold_of = [0] * len(data.train)
    oof, count = torch.zeros(len(data.train), len(EMOTIONS)), torch.zeros(len(data.train), 1)
    index = {id(it): i for i, it in enumerate(data.train)}
    for m in members:
        assert m.fold is not None  # with cfg.folds every member is a fold's
        rows = [index[id(it)] for it in m.val_items]
        fold = [n.name for n in members if n.fold == m.fold]
        weight = unit_weights(run, fold)[fold.index(m.name)]  # its kind's, fitted without this fold's clips
        oof[rows] += weight * read_probs(run / m.name / "val_probs.csv")
        count[rows] += weight
        for r in rows:
            fold_of[r] = m.fold
    return out_of_fold(run, data.train, fold_of, oof / count.clamp(min=1e-12))


def print_members(summary: dict) -> None:
    """One row per member (validation, and test where labelled), then the ensemble's rows."""
    print(f"{'member':>20} {'kind':>11} {'seed':>4} {'epoch':>5} {'val UAR':>7} {'test UAR':>8} {'seconds':>7}")
    for r in summary["members"]:
        test = f"{r['test']['uar']:.3f}" if "test" in r else "-"
        epoch = "-" if r["kind"] == "descriptors" else r["best_epoch"]  # a fixed length, no epoch chosen
        print(f"{r['name']:>20} {r['kind']:>11} {r['seed']:>4} {epoch:>5} {r['validation']['uar']:>7.3f} "
              f"{test:>8} {r['seconds']:>7.0f}")
    for seed, m in summary.get("validation_seeds", {}).items():
        print(f"{'ensemble, seed ' + seed:>20} {'':>11} {seed:>4} {'':>5} {m['uar']:>7.3f}")
    if "validation" in summary and len(summary.get("validation_seeds", {})) > 1:
        print(f"{'ensemble, pooled':>20} {'':>11} {'':>4} {'':>5} {summary['validation']['uar']:>7.3f}")
    if "oof" in summary:
        print(f"{'out-of-fold':>20} {'':>11} {'':>4} {'':>5} {summary['oof']['uar']:>7.3f}")
    if "test" in summary:
        print(f"{'ensemble':>20} {'':>11} {'':>4} {'':>5} {'':>7} {summary['test']['uar']:>8.3f} "
              f"{summary['train_seconds']:>7.0f}")
    if summary.get("sessions", 1) > 1:
        print(f"wall time: {summary['train_seconds'] / 60:.1f} min over {summary['sessions']} sessions (a killed "
              "session counted up to its last 30 s beat)")
