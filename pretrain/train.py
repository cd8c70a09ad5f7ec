"""The pretraining loop: parse config -> data -> model -> loop -> checkpoints, log, curves.

Exact resume: every step reseeds torch, Python and the mask/crop generator from (seed, step,
rank), and the data position (epoch, batch) is saved, so a killed run resumed from its latest
checkpoint ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel

from pretrain.config import PretrainConfig
from pretrain.data import Clip, load_batch, scan, summarize_bad
from pretrain.state import latest_checkpoint, load_checkpoint, save_checkpoint
from w2v2.checkpoint import atomic_write, read_meta
from w2v2.compile import compile_model
from w2v2.config import ModelConfig, to_dict
from w2v2.data.audio import SAMPLE_RATE
from w2v2.data.batching import BucketBatchSampler, collate_waves
from w2v2.model import Wav2Vec2ForPreTraining, build_model
from w2v2.training import NonFiniteGuard, autocast, resolve_amp, resolve_device, warmup_decay
from w2v2.training.progress import progress_bar
from w2v2.training.runs import load_init

# what marks a fine-tuning run folder (finetune.outputs.RUN_OUTPUTS, MEMBER_NAME): never a pretraining run_dir
FINETUNE_OUTPUTS = ("best", "best.old", "metrics.json", "history.jsonl", "val_probs.csv", "submission.csv")
FINETUNE_MEMBER = re.compile(r"(fold|member)_\d+(_probe|_scratch)?")
# updates in a row with no decodable clip (on some rank) before the run stops: far more than bad luck in
# shuffling a partly broken dataset gives, cheap to reach when every file fails (failures are remembered)
MAX_EMPTY_UPDATES = 100


def setup_distributed(cfg: PretrainConfig) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(cfg.device)
    if device.type == "cuda" and device.index is None:  # torchrun: one GPU per local rank
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def data_source(cfg: PretrainConfig, run: Path, rank: int, world: int) -> list[Path]:
    if cfg.data.path:
        return [Path(p) for p in ((cfg.data.path,) if isinstance(cfg.data.path, str) else cfg.data.path)]
    source = run / "synthetic"
    if rank == 0 and not (source / "train.csv").is_file():
        from w2v2.synth import generate_corpus

        print(f"no data.path given: generating the built-in synthetic corpus in {source}")
        generate_corpus(source, clips=cfg.data.synthetic_clips, seed=cfg.seed)
    if world > 1:
        dist.barrier()
    return [source]


def check_run_dir(run: Path) -> None:
    """ValueError unless `run` can be a pretraining run folder: a file cannot, and a fine-tuning run's folder
    must not (its config.yaml and curves.png would be overwritten by ours)."""
    existing = next(p for p in (run, *run.parents) if p.exists())  # run_dir=a.wav/run too
    if not existing.is_dir():
        raise ValueError(f"run_dir={run}: {'it' if existing == run else existing} is a file, not a folder")
    found = [p.name for p in sorted(run.iterdir()) if p.name in FINETUNE_OUTPUTS or FINETUNE_MEMBER.fullmatch(p.name)
             ] if run.is_dir() else []
    if found:
        raise ValueError(f"run_dir={run}: holds a fine-tuning run ({', '.join(found[:4])}); pretraining would "
                         "overwrite its config.yaml and curves.png: choose another run_dir")


def resume_point(resume: str, run: Path) -> Path | None:
    """The checkpoint of resume=auto (the run's latest), none or a path."""
    if resume == "none":
        return None
    return latest_checkpoint(run) if resume == "auto" else Path(resume)


def reseed(cfg: PretrainConfig, step: int, rank: int) -> torch.Generator:
    seed = (cfg.seed * 1_000_003 + step) * 64 + rank
    torch.manual_seed(seed)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def make_sampler(cfg: PretrainConfig, clips: list[Clip], rank: int, world: int) -> BucketBatchSampler:
    """This rank's batches: length-bucketed up to data.max_batch_seconds, each clip on one rank per epoch."""
    return BucketBatchSampler([c.num_samples for c in clips], batch_size=None,
                              max_batch_samples=int(cfg.data.max_batch_seconds * SAMPLE_RATE), seed=cfg.seed,
                              num_replicas=world, rank=rank, max_length=int(cfg.data.max_seconds * SAMPLE_RATE))


def pretrain(cfg: PretrainConfig, model_cfg: ModelConfig) -> dict:
    if cfg.compile and model_cfg.context.layerdrop > 0:  # checked before the data scan, which can be long
        raise ValueError("compile=true needs model.context.layerdrop=0 (random layer skipping recompiles)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = Path(cfg.run_dir)
    check_run_dir(run)
    resume_from = resume_point(cfg.resume, run)
    if resume_from is not None:  # before anything of the run is overwritten
        check_same_model(resume_from, model_cfg)
    rank, world, device = setup_distributed(cfg)
    main_rank = rank == 0
    if main_rank:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(yaml.safe_dump({**to_dict(cfg), "resolved_model": to_dict(model_cfg)},
                                                        sort_keys=False))
    source = data_source(cfg, run, rank, world)
    clips, bad = scan(source, int(cfg.data.min_seconds * SAMPLE_RATE), cfg.data.strict)
    if bad and main_rank:
        print(summarize_bad(bad))
    max_samples = int(cfg.data.max_seconds * SAMPLE_RATE)
    sampler = make_sampler(cfg, clips, rank, world)
    if len(sampler) == 0:
        raise ValueError(f"{', '.join(map(str, source))}: too little audio for one batch per process "
                         f"({len(clips)} clips, {world} ranks)")

    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg, "pretrain").to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps,
                            weight_decay=cfg.optim.weight_decay)
    o = cfg.optim
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_decay(o.warmup_steps, o.max_steps, o.decay))
    trainer: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "nonfinite_total": 0, "elapsed_s": 0.0}
    if resume_from is not None:
        trainer.update(load_checkpoint(resume_from, model, opt, sched))
        if main_rank:
            print(f"resumed from {resume_from} at step {trainer['step']}")
    elif cfg.init != "scratch":  # continued pretraining: same architecture, the source's weights
        init = load_init(cfg.init, "pretrain")
        assert init is not None  # not scratch
        model.load_state_dict(init.state_dict())
        if main_rank:
            print(f"starting from the weights of {cfg.init}")
    if main_rank:
        trim_log(run / "log.jsonl", trainer["step"])
    ddp: torch.nn.Module = model
    if cfg.compile:
        ddp = compile_model(model, dynamic=None, fallback_random=False)  # buckets: a few shapes, then dynamic
    if world > 1:
        ddp = DistributedDataParallel(
            ddp, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=model_cfg.context.layerdrop > 0)
    amp, scaler = autocast(resolve_amp(cfg.optim.amp, device), device)
    stats = loop(Training(cfg, model, ddp, opt, sched, scaler, amp, clips, sampler, device, rank, max_samples),
                 trainer)
    if world > 1:
        check_replicas(model, run, rank, world)
        dist.destroy_process_group()
    return stats


def check_replicas(model: torch.nn.Module, run: Path, rank: int, world: int) -> None:
    """DDP keeps one model in `world` copies; `ddp.json` records each rank's parameter sum and whether
    they agree (a warning if not: the ranks trained different models, e.g. after a skipped update)."""
    sums: list = [None] * world
    dist.all_gather_object(sums, float(sum(p.double().sum() for p in model.parameters())))
    if rank == 0:
        agree_ = max(sums) - min(sums) <= 1e-9 * max(1.0, abs(sums[0]))
        (run / "ddp.json").write_text(json.dumps({"ranks": world, "param_sums": sums, "agree": agree_}))
        if not agree_:
            warnings.warn(f"the {world} DDP replicas ended with different weights (parameter sums {sums})",
                          stacklevel=1)


@dataclass
class Training:
    """What the loop works on."""

    cfg: PretrainConfig
    model: Wav2Vec2ForPreTraining  # the bare model: temperature, clipping, checkpoints
    ddp: torch.nn.Module  # what runs forward: the model, compiled and/or wrapped by DDP
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    amp: Any  # autocast context (or nullcontext)
    clips: list[Clip]
    sampler: BucketBatchSampler
    device: torch.device
    rank: int
    max_samples: int


def flat(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def check_same_model(checkpoint: Path, model_cfg: ModelConfig) -> None:
    """ValueError listing the differences when `checkpoint` holds another model config than this run's
    (the classification head's fields aside: a pretraining model has none)."""
    stored, wanted = flat(read_meta(checkpoint)["model"]), flat(to_dict(model_cfg))
    diff = [f"{k}: {stored.get(k)} -> {wanted.get(k)}" for k in sorted(stored.keys() | wanted.keys())
            if stored.get(k) != wanted.get(k) and not k.startswith("head.")]
    if diff:
        raise ValueError(f"{checkpoint} was trained with another model config ({'; '.join(diff[:5])}"
                         f"{f'; and {len(diff) - 5} more' if len(diff) > 5 else ''}): resume with the run's own "
                         "config, start over with resume=none, or use another run_dir")


def logged_step(line: str) -> int | None:
    """The step of one log.jsonl line; None for a line cut short by a kill."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def trim_log(path: Path, step: int) -> None:
    """Drop log records after `step` (the resumed checkpoint's): the run logs those steps again."""
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if (n := logged_step(line)) is not None and n <= step]
        atomic_write(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in keep)))


Prepared = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # wave, padding_mask, mask, negatives


def prepare(model, clips: list[Clip], micro: list[int], max_samples: int, gen: torch.Generator,
            failed: dict[str, str], device: torch.device) -> Prepared | None:
    """One micro-batch on `device` with its mask and negatives drawn; None when no clip decoded."""
    waves = load_batch(clips, micro, max_samples, gen, failed)
    if not waves:
        return None
    wave, padding_mask = collate_waves(waves)
    wave, padding_mask = wave.to(device), padding_mask.to(device)
    mask, negatives = model.draw_targets(wave, padding_mask, gen)
    return wave, padding_mask, mask, negatives


def agree(values: torch.Tensor, op: dist.ReduceOp.RedOpType) -> torch.Tensor:
    """`values` reduced over every rank (themselves in a single process)."""
    if dist.is_initialized():
        dist.all_reduce(values, op=op)
    return values


def accumulate(ddp: torch.nn.Module, amp, scaler, prepared: list[Prepared | None],
               device: torch.device) -> tuple[list, str]:
    """Forward and backward of one update's micro-batches -> (detached outputs, "ok" | "empty" | "nonfinite").

    Every rank takes the same branch, or DDP's gradient all-reduce would wait forever for a rank that
    skipped its backward: a micro-batch empty on any rank is left out on all (decided before any
    forward, as DDP's forward may broadcast buffers), and a non-finite loss on any rank skips the
    update on all (decided before the one synchronising backward). Gradients sync once per update
    (no_sync on the other micro-batches, as nanoGPT), and the loss is normalised by the masked frames
    of the whole update summed over ranks, so every masked frame weighs the same (minimal_hubert)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    n = len(prepared)
    local = torch.tensor([float(p is None) for p in prepared] + [float(p[2].sum()) if p else 0.0 for p in prepared],
                         device=device)
    total = agree(local, dist.ReduceOp.SUM).cpu()
    runnable = [i for i in range(n) if total[i] == 0]
    if not runnable:
        return [], "empty"
    frames = float(sum(total[n + i] for i in runnable))
    outs, bad = [], False
    for k, i in enumerate(runnable):
        p = prepared[i]
        assert p is not None  # runnable: decoded on every rank
        wave, padding_mask, mask, negatives = p
        last = k == len(runnable) - 1
        sync = nullcontext() if last or not isinstance(ddp, DistributedDataParallel) else ddp.no_sync()
        with sync:
            with amp:
                out = ddp(wave, padding_mask, mask=mask, negative_indices=negatives)
            # DDP averages gradients over ranks: times world, the sum over all ranks' frames / frames
            loss = out.loss * world / max(frames, 1.0)
            bad = bad or not bool(torch.isfinite(loss))
            if last:
                bad = bool(agree(torch.tensor(float(bad), device=device), dist.ReduceOp.MAX))
            if not bad:
                (scaler.scale(loss) if scaler else loss).backward()
        outs.append(type(out)(*(t.detach() for t in out)))
    return outs, "nonfinite" if bad else "ok"


def loop(t: Training, trainer: dict) -> dict:
    """Updates until optim.max_steps from `trainer`'s position (step, epoch, batch), which it advances."""
    cfg, model, opt, sched, scaler, sampler, rank = t.cfg, t.model, t.opt, t.sched, t.scaler, t.sampler, t.rank
    main_rank, o = rank == 0, cfg.optim
    failed: dict[str, str] = {}
    guard = NonFiniteGuard(cfg.max_nonfinite, "lower optim.lr, use optim.amp=none or check the data; the last "
                           "checkpoint is intact", total=trainer["nonfinite_total"])
    warned_collapse, first, last, empty = False, None, None, 0
    bar = progress_bar(total=o.max_steps, initial=trainer["step"], desc="pretraining", unit="step",
               disable=not main_rank or None)
    t0, audio_s = time.perf_counter(), 0.0
    elapsed_before = trainer.get("elapsed_s", 0.0)  # wall time of the run's earlier sessions (resumed runs)
    while trainer["step"] < o.max_steps:
        sampler.set_epoch(trainer["epoch"])
        batches = list(sampler)
        for b in range(trainer["batch"], len(batches), o.accumulate):
            step = trainer["step"]
            gen = reseed(cfg, step, rank)
            model.set_step(step)
            opt.zero_grad(set_to_none=True)
            micros = batches[b:b + o.accumulate]
            prepared = [prepare(model, t.clips, micro, t.max_samples, gen, failed, t.device) for micro in micros]
            audio_s += sum(float((~p[1]).sum()) for p in prepared if p is not None) / SAMPLE_RATE
            logs, status = accumulate(t.ddp, t.amp, scaler, prepared, t.device)
            trainer["batch"] = b + o.accumulate
            # an update whose clips all failed to decode trains nothing; if no clip ever decodes again (every
            # file NaN, say) the step never advances, so a long enough streak ends the run (same on every rank)
            empty = empty + 1 if status == "empty" else 0
            if empty >= MAX_EMPTY_UPDATES:
                raise ValueError(f"no audio decoded in {empty} updates in a row; "
                                 f"{summarize_bad(failed_files(failed), verb='dropped')}: fix or remove these files")
            if status == "empty":
                continue
            if guard.skip(status == "ok", step):
                trainer["nonfinite_total"] = guard.total
                if main_rank:
                    bar.write(f"step {step + 1}: non-finite loss (on at least one rank): update skipped on every rank")
                continue
            apply_update(t, o.grad_clip)
            trainer["step"] += 1
            trainer["elapsed_s"] = elapsed_before + time.perf_counter() - t0
            lr = float(sched.get_last_lr()[0])
            record = summarize(logs, trainer["step"], lr, audio_s / (time.perf_counter() - t0))
            record["elapsed_s"] = trainer["elapsed_s"]  # across resumes: the model card's wall time
            first = first or record
            last = record
            if main_rank:
                warned_collapse = report_update(t, trainer, record, bar, warned_collapse)
            if trainer["step"] >= o.max_steps:
                break
        else:
            trainer["epoch"] += 1
            trainer["batch"] = 0
    bar.close()
    if failed and main_rank:
        print(summarize_bad(failed_files(failed), verb="dropped while training"))
    return {"first": first, "last": last, "nonfinite_steps": trainer["nonfinite_total"], "failed": failed,
            "audio_seconds_per_second": last["audio_seconds_per_second"] if last else 0.0}


def apply_update(t: Training, grad_clip: float) -> None:
    """Clip the gradients, then step the optimizer (through fp16's loss scaler, where there is one) and the
    learning-rate schedule."""
    if t.scaler:
        t.scaler.unscale_(t.opt)
    torch.nn.utils.clip_grad_norm_(t.model.parameters(), grad_clip)
    if t.scaler:
        t.scaler.step(t.opt)
        t.scaler.update()
    else:
        t.opt.step()
    t.sched.step()


def report_update(t: Training, trainer: dict, record: dict, bar: Any, warned_collapse: bool) -> bool:
    """The main rank's work after an update: the progress bar, the log line every log_every steps, a warning
    when the codebook collapses (once: returns whether it was given), a checkpoint every save_every steps."""
    cfg, o, step = t.cfg, t.cfg.optim, trainer["step"]
    codewords = t.model.cfg.quantizer.groups * t.model.cfg.quantizer.codewords
    bar.update()
    bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}",
                    ppl=f"{record['perplexity']:.1f}", temp=f"{record['temperature']:.2f}")
    if step % cfg.log_every == 0 or step == 1:
        with open(Path(cfg.run_dir) / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    if not warned_collapse and step > o.warmup_steps and record["perplexity"] < 0.1 * codewords:
        warned_collapse = True
        warnings.warn(f"code perplexity collapsed to {record['perplexity']:.1f} of {codewords} codewords "
                      "(raise objective.diversity_weight or lower optim.lr)", stacklevel=1)
    if step % cfg.save_every == 0 or step == o.max_steps:
        save_checkpoint(Path(cfg.run_dir), t.model, t.opt, t.sched, trainer, {"pretrain": to_dict(cfg)},
                        cfg.keep_checkpoints)
    return warned_collapse


def failed_files(failed: dict[str, str]) -> list[tuple[Path, str]]:
    return [(Path(p), why) for p, why in failed.items()]


def summarize(outs: list, step: int, lr: float, throughput: float) -> dict:
    n = sum(float(o.num_masked) for o in outs)
    return {"step": step, "loss": sum(float(o.loss) for o in outs) / max(n, 1),
            "contrastive": sum(float(o.contrastive_loss) for o in outs) / max(n, 1),
            "accuracy": sum(float(o.accuracy) * float(o.num_masked) for o in outs) / max(n, 1),
            "perplexity": sum(float(o.perplexity) for o in outs) / len(outs),
            "temperature": float(outs[-1].temperature), "lr": lr, "audio_seconds_per_second": throughput}
