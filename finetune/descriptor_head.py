"""The default recipe's descriptors member: the travelling model's heads trained on the run's own clips.

The travelling model (`w2v2.emotion.travel`: linear heads over 189 acoustic descriptors, standardised per
speaker) is what carried emotion across languages and studios where wav2vec 2.0 embeddings did not
(docs/travel.md). Trained on a user's own clips it is a member unlike the three networks: trained on the
training speakers of SAVEE, TurEV-DB or Urdu and tested on their other speakers, it scored far above the
networks that the default recipe fine-tunes there (docs/recipe.md). It costs a descriptor pass over the clips.

- training: each clip's descriptors, standardised by its speaker's statistics where the data names speakers
  (else the corpus's), every corpus on its own classes (`corpus` column) and weighing the same;
- validation and test clips are scored as `evaluate` and `submit` score them (the one path,
  `EmotionRecognizer.clip_probs`): per speaker where the clips name speakers, else as one recording set;
- the model is saved as RUN/best (travel.json and its weights), so `evaluate`, `predict`, `submit` and
  ensembles take the member folder like any other.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from finetune.config import FinetuneConfig
from finetune.metrics import classification_metrics
from finetune.outputs import probs_frame, start_run, write_csv, write_json, write_test_outputs
from finetune.plots import plot_confusion
from w2v2.data.datasets import Dataset, Item, item_labels
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.descriptors import clip_descriptors
from w2v2.emotion.recognizer import EmotionRecognizer, TravelMember
from w2v2.emotion.travel import TravelConfig, fit, save_travel
from w2v2.emotion.windows import AudioCache, cached_waves
from w2v2.training.progress import progress_bar


def member_travel_config(seed: int) -> TravelConfig:
    """The heads of seed `seed`: the travelling model's recipe, each seed's heads their own (seeds k*heads..).
    Descriptors alone, without the log-mel CNNs: beside the recipe's networks (trained on the same clips) a
    fourth network is unmeasured, and it would cost minutes a seed."""
    cfg = TravelConfig(mel_nets=0)
    return replace(cfg, seed=seed * cfg.heads)


def training_descriptors(items: list[Item], desc: str, floor: float) -> tuple[torch.Tensor, list[Item]]:
    """(descriptors (n, d), the items they are of): a clip that cannot be decoded is left out (AudioCache warns)."""
    cache, rows, kept = AudioCache(items), [], []
    for i in progress_bar(range(len(items)), desc=desc, unit="clip", leave=False, mininterval=5):
        if (wave := cache[i]) is not None:
            rows.append(clip_descriptors(wave, floor))
            kept.append(items[i])
    if not rows:
        raise ValueError("no training clip could be decoded")
    return torch.stack(rows), kept


def scored_probs(folder: Path, items: list[Item]) -> torch.Tensor:
    """(n, 6) probabilities of `items` by the model in `folder`, as `evaluate` scores a set: per speaker where
    the items name speakers, else as one recording set (a clip that cannot be decoded: 1/6 each)."""
    recognizer = EmotionRecognizer([TravelMember(folder)], str(folder), torch.device("cpu"))
    speakers = [it.speaker for it in items]
    waves = cached_waves(AudioCache(items), len(items))
    if any(s is not None for s in speakers):
        return recognizer.clip_probs(waves, normalise="speaker", speakers=speakers)[0]
    return recognizer.clip_probs(waves, normalise="set")[0]


def train_descriptors(data: Dataset, cfg: FinetuneConfig, run: Path, train_items: list[Item],
                      val_items: list[Item]) -> dict:
    """Fit the descriptors heads of seed `cfg.seed` on `train_items`, save them as `run/best`, and write the
    member's metrics.json, val_probs.csv and (for a competition) test outputs. Returns metrics.json's content."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start_run(run, cfg)
    start = time.perf_counter()
    tcfg = member_travel_config(cfg.seed)
    x, kept = training_descriptors(train_items, "descriptors (training)", tcfg.log_floor)
    labels = item_labels(kept)
    model = fit(x, labels, [it.corpus or "data" for it in kept],
                [it.speaker or f"{it.corpus or 'data'}:*" for it in kept], tcfg)
    save_travel(model, run / "best", {"trained_on": str(data.root), "clips": len(kept), "member": run.name,
                                      "window_seconds": cfg.window_seconds})  # its run's networks' windows
    val_probs = scored_probs(run / "best", val_items)
    val_metrics = classification_metrics(item_labels(val_items), val_probs.argmax(-1).tolist())
    write_csv(probs_frame(val_items, val_probs, labelled=True), run / "val_probs.csv")
    plot_confusion(val_metrics["confusion_matrix"], list(EMOTIONS), run / "confusion_matrix.png",
                   f"validation (UAR {val_metrics['uar']:.3f})")
    result: dict = {"validation": val_metrics, "best_epoch": tcfg.epochs, "layout": data.layout,
                    "data": str(data.root)}
    if data.test:
        result |= write_test_outputs(run, data, scored_probs(run / "best", data.test))
    result["train_seconds"] = time.perf_counter() - start
    write_json(run / "metrics.json", result)
    print(f"descriptors: {len(kept)} training clips, validation UAR {val_metrics['uar']:.3f} in "
          f"{result['train_seconds']:.0f} s")
    return result
