"""`python -m finetune train --probe`: a linear probe on the frozen backbone (SUPERB's protocol).

The backbone never trains: every clip passes through it once, and the head (softmax-weighted sum of
all hidden states, mean pooling, projector, classifier) trains on each clip's per-layer mean vectors.
Mean pooling is linear, so the head on pooled vectors is exactly the head on frames, pooled; the
hidden states are standardised per layer and dimension with the training clips' statistics, kept as
buffers of the head (`HeadConfig.standardize`). What is saved is therefore an ordinary classifier
checkpoint: `evaluate`, `predict`, `submit` and ensembles with fine-tuned runs take it as they are.

A probe costs one forward pass over the clips, so it is the cheapest member of the default recipe
(docs/recipe.md has what it costs and scores).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from finetune.config import DEFAULT_HEAD, FinetuneConfig
from finetune.metrics import classification_metrics, label_weights
from finetune.model import build_classifier
from finetune.outputs import finish, start_run
from finetune.plots import plot_curves
from w2v2.checkpoint import save_model
from w2v2.config import to_dict
from w2v2.data.datasets import Dataset, Item
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.windows import AudioCache, layer_means
from w2v2.heads import ClassificationHead
from w2v2.training import resolve_device

BATCH = 32  # clips per probe update (pooled vectors: cheap)


def pooled_logits(head: ClassificationHead, v: torch.Tensor) -> torch.Tensor:
    """The head's logits for pooled vectors v (n, layers+1, d), each taken as a one-frame clip."""
    return head(v[:, -1:], tuple(rearrange(v, "b n d -> n b 1 d")), None)[0]


def fit_head(head: ClassificationHead, x: dict[str, torch.Tensor], y: dict[str, torch.Tensor], seed: int,
             epochs: int, lr: float, weight_decay: float = 0.01, log=None) -> tuple[float, int]:
    """Train `head` (standardize=True) on pooled vectors x[split] (n, layers+1, d): its standardisation is
    set from x["train"], then AdamW with a class-balanced loss; the epoch with the best validation UAR
    is kept (loaded into `head`). Returns (best validation UAR, its epoch). `log(epoch, loss, uar)`."""
    torch.manual_seed(seed)
    head.input_mean.copy_(x["train"].mean(0))
    head.input_std.copy_(x["train"].std(0) + 1e-5)
    weights = label_weights(y["train"])
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    logits = lambda v: pooled_logits(head, v)  # noqa: E731

    g = torch.Generator().manual_seed(seed)
    best, best_epoch, best_state = -math.inf, 0, None
    for epoch in range(1, epochs + 1):
        head.train()
        total, n = 0.0, 0
        for idx in torch.randperm(len(y["train"]), generator=g).split(BATCH):
            loss = F.cross_entropy(logits(x["train"][idx]), y["train"][idx], weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        head.eval()
        with torch.no_grad():
            uar = classification_metrics(y["val"].tolist(), logits(x["val"]).argmax(-1).tolist())["uar"]
        if log:
            log(epoch, total / n, uar)
        if uar > best:
            best, best_epoch, best_state = uar, epoch, {k: v.clone() for k, v in head.state_dict().items()}
    assert best_state is not None  # set at the first epoch: any UAR beats -inf
    head.load_state_dict(best_state)
    head.eval()
    return best, best_epoch


def train_probe(data: Dataset, cfg: FinetuneConfig, run: Path, train_items: list[Item],
                val_items: list[Item]) -> dict:
    """The probe of `cfg.init`'s backbone on `train_items` (best epoch by UAR on `val_items`), saved as
    `run/best`; then `finetune.train.finish`'s outputs. Returns metrics.json's content."""
    if cfg.init == "scratch":
        raise ValueError("--probe judges a pretrained backbone: give --init pretrained:NAME, hf:DIR_OR_ID or ckpt:PATH")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start_run(run, cfg)
    start = time.perf_counter()
    model = build_classifier(replace(cfg, head=replace(cfg.head or DEFAULT_HEAD, standardize=True)))
    model.freeze(True, transformer=True)
    model.to(resolve_device(cfg.device))  # the feature pass; the head then trains on the CPU (pooled vectors)
    val_cache = AudioCache(val_items)  # decoded once: the features here, the validation metrics in finish()
    x = {"train": layer_means(model, train_items, cfg.window_seconds, progress=True, desc="features (training)"),
         "val": layer_means(model, val_items, cfg.window_seconds, progress=True, desc="features (validation)",
                            cache=val_cache)}
    y = {s: torch.tensor([it.label for it in items]) for s, items in (("train", train_items), ("val", val_items))}
    feature_s = time.perf_counter() - start
    model.cpu()
    history = []

    def log(epoch: int, loss: float, uar: float) -> None:
        history.append({"epoch": epoch, "train_loss": loss, "val_uar": uar})

    best, best_epoch = fit_head(model.head, x, y, cfg.seed, cfg.probe_epochs, cfg.lr_head, cfg.weight_decay, log)
    with open(run / "history.jsonl", "w") as f:
        f.writelines(json.dumps(h) + "\n" for h in history)
    print(f"probe: features of {len(train_items) + len(val_items)} clips in {feature_s:.0f} s; best validation UAR "
          f"{best:.3f} at epoch {best_epoch} of {cfg.probe_epochs}")
    save_model(model, run / "best", extra={"labels": list(EMOTIONS), "finetune": to_dict(cfg), "epoch": best_epoch,
                                           "val_uar": best, "probe": True})
    plot_curves([{**h, "val_accuracy": math.nan, "val_macro_f1": math.nan} for h in history], run / "curves.png")
    return finish(run, data, val_items, val_cache, cfg, best_epoch, time.perf_counter() - start)
