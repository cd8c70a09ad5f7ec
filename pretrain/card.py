"""python -m pretrain.card RUN OUT_DIR [--name small] [--before EARLIER_RUN ...]: ship a pretraining run as
a w2v2 checkpoint with a model card.

OUT_DIR gets the run's latest checkpoint (model.safetensors + w2v2.json, the resolved config and the
pretraining recipe), its curves (curves.png) and README.md: what data (hours, clips, speakers where a
manifest says), how many updates, wall time, throughput, the final contrastive accuracy and code
perplexity, and the data's licences. Every figure is read from the run (log.jsonl, config.yaml) and
from the data it names, so the card cannot drift from the weights. A run that continued from another
run's weights (`pretrain init=ckpt:...` or `init=pretrained:NAME`) names its earlier runs with --before,
oldest first: the card then gives every stage's recipe, updates and time, the totals, and one set of
curves across the stages.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load_file

from pretrain.plots import plot_log
from w2v2.checkpoint import META, WEIGHTS, read_meta
from w2v2.config import SAMPLE_RATE
from w2v2.training.runs import resolve_checkpoint

# What we know of the corpora this project pretrains on; anything else is listed by path only.
KNOWN_DATA = {
    "speechocean762": "speechocean762 (Zhang et al., 2021, *speechocean762: An Open-Source Non-native English Speech "
                      "Corpus For Pronunciation Assessment*, arXiv:2104.01378): read English by 250 Mandarin-native "
                      "speakers, children and adults; free for commercial and non-commercial use, cite the paper",
    "ljspeech": "LJ Speech 1.1 (Keith Ito, 2017; LibriVox recordings): one female English reader; public domain",
}


def source_facts(path: str) -> dict:
    """Clips, hours and speakers of one pretraining source (from a manifest's num_samples / speaker)."""
    p = Path(path)
    description = next((d for k, d in KNOWN_DATA.items() if k in path.lower()), path)
    facts: dict[str, Any] = {"path": path, "description": description}
    if p.is_file():
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if p.suffix == ".tsv" else ","))
        if rows and "num_samples" in rows[0]:
            facts["clips"] = len(rows)
            facts["hours"] = sum(int(r["num_samples"]) for r in rows) / SAMPLE_RATE / 3600
        if rows and "speaker" in rows[0]:
            facts["speakers"] = len({r["speaker"] for r in rows})
    return facts


def run_facts(run: Path, earlier_minutes: float = 0.0) -> dict:
    """Final figures of a run: step, wall time, throughput, accuracy and perplexity (mean of the last 5 logs).
    Wall time: the log's `elapsed_s` (all sessions), else the last session's file times + `earlier_minutes`."""
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    last = rows[-5:]
    wall = rows[-1].get("elapsed_s") or ((run / "log.jsonl").stat().st_mtime - (run / "config.yaml").stat().st_mtime
                                         + 60 * earlier_minutes)
    return {"steps": rows[-1]["step"], "wall_minutes": wall / 60,
            "audio_seconds_per_second": rows[-1]["audio_seconds_per_second"],
            "accuracy": statistics.mean(r["accuracy"] for r in last),
            "perplexity": statistics.mean(r["perplexity"] for r in last),
            "contrastive": statistics.mean(r["contrastive"] for r in last),
            "first_accuracy": rows[0]["accuracy"]}


def stage_recipe(cfg: dict, model: dict) -> str:
    """One run's recipe in words: crops, optimiser, masking, objective, temperature, precision."""
    optim, quantizer = cfg["optim"], model["quantizer"]
    temperature = (f"Gumbel temperature {quantizer['temp_max']} -> {quantizer['temp_min']}"
                   if quantizer["temp_max"] != quantizer["temp_min"] else f"Gumbel temperature {quantizer['temp_min']}")
    return (f"at most {cfg['data']['max_batch_seconds']:.0f} s of padded audio "
            f"({cfg['data']['max_seconds']:.0f} s random crops), AdamW lr {optim['lr']} ({optim['warmup_steps']} "
            f"warmup, {optim['decay']} decay), mask {model['masking']['mask_prob']}/{model['masking']['mask_length']}, "
            f"{model['objective']['num_negatives']} distractors, "
            f"diversity weight {model['objective']['diversity_weight']}, {temperature}"
            + ("" if optim.get("amp", "auto") == "auto" else f", amp {optim['amp']}"))


def write_card(run: Path, out: Path, name: str, earlier_minutes: float = 0.0, before: list[Path] | None = None) -> Path:
    """The card of `run`'s latest checkpoint; `before`: the runs it continued from, oldest first
    (`earlier_minutes` then belongs to the oldest)."""
    stages = [*(before or []), run]
    ckpt = resolve_checkpoint(run)
    meta = read_meta(ckpt)
    configs = [yaml.safe_load((r / "config.yaml").read_text()) for r in stages]
    models = [read_meta(resolve_checkpoint(r))["model"] for r in stages[:-1]] + [meta["model"]]
    out.mkdir(parents=True, exist_ok=True)
    for file in (WEIGHTS, META):
        shutil.copy2(ckpt / file, out / file)
    plot_log([r / "log.jsonl" for r in stages], out / "curves.png")
    paths = [p for c in configs for p in ([c["data"]["path"]] if isinstance(c["data"]["path"], str)
                                          else c["data"]["path"])]
    sources = [source_facts(p) for p in dict.fromkeys(paths)]
    facts = [run_facts(r, earlier_minutes if i == 0 else 0.0) for i, r in enumerate(stages)]
    params = sum(t.numel() for t in load_file(str(out / WEIGHTS)).values())
    lines = (card_header(name, meta["model"], params, sources) + card_training(facts, configs, models)
             + card_licence(sources))
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return out


def card_header(name: str, model: dict, params: int, sources: list[dict]) -> list[str]:
    """The card's title, what the model is for, its architecture and its data."""
    hours = sum(s.get("hours", 0) for s in sources)
    lines = [
        f"# w2v2 `{name}`: wav2vec 2.0 pretrained on {hours:.1f} h of speech",
        "",
        f"A {params / 1e6:.1f}M-parameter wav2vec 2.0 (Baevski et al., 2020) pretraining model, written and "
        "trained with w2v2 on 2 CPU cores. Use it as the starting point for emotion recognition "
        f"(`python -m finetune train --data DIR --init pretrained:{name}`) or for continued pretraining on your "
        f"own audio (`python -m pretrain init=pretrained:{name} data.path=DIR`, with the recipe of "
        f"`configs/pretrain/{name}.yaml` where the project has one).",
        "",
        "## Architecture",
        f"- CNN feature encoder: channels {model['encoder']['conv_dim']}, {model['encoder']['norm']} norm, "
        "20 ms frames, 25 ms receptive field" + (", waveform normalised per utterance" if model["normalize_waveform"]
                                                 else ""),
        f"- Transformer: {model['context']['layers']} layers, width {model['context']['dim']}, "
        f"{model['context']['heads']} heads, FFN {model['context']['ffn_dim']}, "
        f"{'pre' if model['context']['layer_norm_first'] else 'post'}-LN, conv. positions "
        f"(kernel {model['context']['pos_conv_kernel']})",
        f"- Quantizer: {model['quantizer']['groups']} groups x {model['quantizer']['codewords']} codewords",
        "",
        "## Data",
    ]
    for s in sources:
        extra = ", ".join(f"{s[k]:.2f} h" if k == "hours" else f"{s[k]} {k}" for k in ("hours", "clips", "speakers")
                          if k in s)
        lines.append(f"- {s['description']}" + (f" ({extra})" if extra else ""))
    known = all(any(k in s["path"].lower() for k in KNOWN_DATA) for s in sources)
    return lines + [
        "",
        "Only freely licensed audio went into these weights (no emotional or non-commercial data)." if known else
        "Check the licences of the data above before you share these weights.",
        "",
    ]


def card_training(facts: list[dict], configs: list[dict], models: list[dict]) -> list[str]:
    """The card's training section: each stage's updates and recipe, wall time, the final figures."""
    r, model = facts[-1], models[-1]
    lines = ["## Training"]
    if len(facts) == 1:
        lines.append(f"- {r['steps']} updates of {stage_recipe(configs[0], model)}")
        lines.append(f"- Wall time {r['wall_minutes']:.0f} min on 2 CPU cores, {r['audio_seconds_per_second']:.0f} "
                     "audio-s/s")
    else:
        lines.append(f"- {sum(f['steps'] for f in facts)} updates in {len(facts)} stages, each starting from the "
                     "weights the stage before ended with:")
        for i, (f, c, m) in enumerate(zip(facts, configs, models, strict=True)):
            start = "from random weights" if c.get("init", "scratch") == "scratch" else "continued"
            lines.append(f"  {i + 1}. {f['steps']} updates ({start}) of {stage_recipe(c, m)}; "
                         f"{f['wall_minutes']:.0f} min, {f['audio_seconds_per_second']:.0f} audio-s/s")
        lines.append(f"- Wall time {sum(f['wall_minutes'] for f in facts):.0f} min on 2 CPU cores in all")
    return lines + [
        f"- Final (mean of the last 5 logged steps): contrastive accuracy {r['accuracy']:.3f} "
        f"(step 1: {facts[0]['first_accuracy']:.3f}), contrastive loss {r['contrastive']:.3f}, code perplexity "
        f"{r['perplexity']:.1f} of {model['quantizer']['groups'] * model['quantizer']['codewords']}",
        f"- The full resolved config and pretraining recipe are in `{META}`",
        "",
        "![pretraining curves](curves.png)",
        "",
    ]


def card_licence(sources: list[dict]) -> list[str]:
    return ["## Licence and attribution",
            "The weights are released under the MIT licence, as the code. They were learned from: "
            + "; ".join(s["description"] for s in sources) + "."]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pretrain.card", description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="a pretraining run folder")
    p.add_argument("out", type=Path, help="the checkpoint folder to write (e.g. w2v2/pretrained/small)")
    p.add_argument("--name", default="small", help="the short name users pass as init=pretrained:NAME")
    p.add_argument("--earlier-wall-minutes", type=float, default=0.0,
                   help="wall time of earlier sessions of a run resumed before its log recorded elapsed_s (with "
                        "--before: of the oldest run)")
    p.add_argument("--before", type=Path, action="append", default=[],
                   help="a run that RUN continued from (init=ckpt:/pretrained:); repeat, oldest first")
    args = p.parse_args(argv)
    print(f"wrote {write_card(args.run, args.out, args.name, args.earlier_wall_minutes, args.before)}")


if __name__ == "__main__":
    main()
