"""The shipped pretrained checkpoint (w2v2/pretrained/small): loads, gives input-dependent features, and
is what init=pretrained:small starts from."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from finetune.config import FinetuneConfig
from finetune.model import build_classifier
from w2v2.checkpoint import PRETRAINED_DIR, pretrained_names
from w2v2.config import preset, to_dict
from w2v2.training.runs import init_checkpoint, load_init

SMALL = PRETRAINED_DIR / "small"


def test_small_is_shipped_with_a_model_card() -> None:
    assert "small" in pretrained_names()
    assert (SMALL / "model.safetensors").stat().st_size < 25 * 2**20
    card = (SMALL / "README.md").read_text()
    for fact in ("speechocean762", "LJ Speech", "steps", "audio-s/s", "perplexity", "licen"):
        assert fact.lower() in card.lower(), fact
    meta = json.loads((SMALL / "w2v2.json").read_text())
    arch = {k: meta["model"][k] for k in ("encoder", "context")}
    want = to_dict(preset("small"))
    assert {k: {n: v for n, v in arch[k].items() if n != "grad_scale"} for k in arch} == \
        {k: {n: v for n, v in want[k].items() if n != "grad_scale"} for k in arch}  # the small preset's shape


def test_small_gives_finite_input_dependent_features() -> None:
    model = load_init("pretrained:small", "backbone").eval()
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 16000, generator=g)
    with torch.no_grad():
        ca, cb = model(a[None]).c, model(b[None]).c
        c_loud = model(3 * a[None]).c
    assert ca.shape == (1, 49, 256) and torch.isfinite(ca).all() and torch.isfinite(cb).all()
    assert (ca - cb).abs().mean() > 0.05 * ca.abs().mean()  # different audio, different features
    torch.testing.assert_close(c_loud, ca, atol=1e-4, rtol=1e-4)  # waveform normalisation: gain-invariant


def test_finetune_init_pretrained_small_starts_from_exactly_its_weights() -> None:
    stored = load_file(str(SMALL / "model.safetensors"))
    model = build_classifier(FinetuneConfig(init="pretrained:small"))
    got = model.backbone.state_dict()
    assert got.keys() == {k[len("backbone."):] for k in stored if k.startswith("backbone.")}
    for k, v in got.items():
        assert torch.equal(v, stored["backbone." + k]), k
    random = build_classifier(FinetuneConfig(init="scratch", preset="small")).backbone.state_dict()
    key = "context.layers.0.attention.qkv.weight"
    assert not torch.equal(random[key], got[key])


def test_unknown_pretrained_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="available: .*small"):
        init_checkpoint("pretrained:huge")
    with pytest.raises(ValueError, match="use scratch, pretrained:NAME"):
        init_checkpoint("pretrained")


def test_model_card_reads_its_figures_from_the_run(tmp_path) -> None:
    import numpy as np
    import soundfile as sf

    from pretrain.__main__ import main as pretrain_main
    from pretrain.card import write_card

    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        sf.write(tmp_path / f"c{i}.wav", rng.standard_normal(24000).astype(np.float32) * 0.1, 16000)
        rows.append(f"c{i}.wav\t24000\tspk{i % 3}")
    (tmp_path / "manifest.tsv").write_text("path\tnum_samples\tspeaker\n" + "\n".join(rows) + "\n")
    run = tmp_path / "run"
    pretrain_main([f"data.path={tmp_path / 'manifest.tsv'}", "optim.max_steps=3", "save_every=3", "log_every=1",
                   f"run_dir={run}", "data.max_seconds=1.5", "data.max_batch_seconds=6", "optim.warmup_steps=1",
                   "threads=2"])
    out = write_card(run, tmp_path / "shipped", "mini")
    card = (out / "README.md").read_text()
    assert "- 3 updates of at most 6 s" in card and "(0.00 h, 6 clips, 3 speakers)" in card
    assert "init=pretrained:mini" in card and (out / "curves.png").is_file()
    stored = load_file(str(run / "checkpoints" / "step_00000003" / "model.safetensors"))
    shipped = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(stored[k], shipped[k]) for k in stored)
    # continued pretraining: the card of the second run names both stages and ships the second's weights
    more = tmp_path / "more"
    pretrain_main([f"data.path={tmp_path / 'manifest.tsv'}", "optim.max_steps=2", "save_every=2", "log_every=1",
                   f"run_dir={more}", "data.max_seconds=1.5", "data.max_batch_seconds=6", "optim.warmup_steps=1",
                   "threads=2", f"init=ckpt:{run / 'checkpoints' / 'step_00000003'}", "model.quantizer.temp_max=0.5",
                   "model.quantizer.temp_min=0.5"])
    out = write_card(more, tmp_path / "shipped2", "mini", before=[run])
    card = (out / "README.md").read_text()
    assert "- 5 updates in 2 stages" in card, card
    assert "1. 3 updates (from random weights) of at most 6 s" in card and "Gumbel temperature 2.0 -> 0.5" in card
    assert "2. 2 updates (continued) of at most 6 s" in card and "Gumbel temperature 0.5;" in card
    assert card.count("(0.00 h, 6 clips, 3 speakers)") == 1  # the same data once
    stored = load_file(str(more / "checkpoints" / "step_00000002" / "model.safetensors"))
    shipped = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(stored[k], shipped[k]) for k in stored)


def test_pretrain_init_pretrained_small_starts_from_exactly_its_weights(tmp_path) -> None:
    import numpy as np
    import soundfile as sf

    from pretrain.__main__ import main as pretrain_main

    rng = np.random.default_rng(1)
    for i in range(4):
        sf.write(tmp_path / f"c{i}.wav", rng.standard_normal(16000).astype(np.float32) * 0.1, 16000)
    run = tmp_path / "run"
    # lr 0: the one update changes nothing, so the saved weights are the ones the run started from
    pretrain_main([f"data.path={tmp_path}", "init=pretrained:small", "optim.lr=0", "optim.max_steps=1", "save_every=1",
                   "optim.warmup_steps=1", "data.max_seconds=1", "data.max_batch_seconds=4", f"run_dir={run}",
                   "threads=2"])
    started = load_file(str(run / "checkpoints" / "step_00000001" / "model.safetensors"))
    stored = load_file(str(SMALL / "model.safetensors"))
    assert started.keys() == stored.keys()
    assert all(torch.equal(started[k], stored[k]) for k in stored if k != "quantizer.temperature")


def test_the_shipped_emotion_ensemble_is_no_init_and_says_how_to_use_it() -> None:
    from w2v2.checkpoint import pretrained_dir

    with pytest.raises(ValueError, match="an ensemble of classifiers: use it with --ckpt"):
        pretrained_dir("emotion-ravdess", "init='pretrained:emotion-ravdess'")


def test_the_emotion_ravdess_card_gives_its_checkpoints_figures() -> None:
    """The members' validation UARs and best epochs in the card are those saved in each member's w2v2.json,
    and its size is the files' size."""
    import re

    folder = PRETRAINED_DIR / "emotion-ravdess"
    card = " ".join((folder / "README.md").read_text().split())
    meta = {m.name: json.loads((m / "w2v2.json").read_text()) for m in sorted(folder.glob("member_*"))}
    said = re.search(r"fine-tunes ([\d., ]+); probes ([\d., ]+); tiny models ([\d., ]+) \(best epochs ([\d, ]+)",
                     card)
    assert said is not None
    for kind, suffix in zip(said.groups()[:3], ("", "_probe", "_scratch"), strict=True):
        values = [float(v) for v in kind.strip(" ,").split(", ")]
        assert values == [round(meta[f"member_{s}{suffix}"]["val_uar"], 3) for s in (1, 2, 3)]
    assert [int(e) for e in said.group(4).split(", ")] == [meta[f"member_{s}_scratch"]["epoch"] for s in (1, 2, 3)]
    size = sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1e6
    assert f"{size:.1f} MB in all" in card


def test_the_readmes_recipe_table_is_docs_recipes_and_each_mean_is_its_runs() -> None:
    """docs/recipe.md lists each run's test UAR: its mean ± sd must be theirs, and the README's recipe table
    must give the same figures (minutes rounded)."""
    import re
    import statistics
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "recipe.md").read_text()
    table = docs[docs.index("| recipe | test UAR mean ± sd | each | minutes |"):].split("\n\n")[0]
    def key(uar: str) -> str:  # "**0.663** (bootstrap 95% interval 0.613-0.716), accuracy ..." -> "0.663 (0.613-0.716)"
        return re.sub(r"bootstrap 95%( interval)? ", "", uar.replace("*", "").split("),")[0].rstrip(")")) + (
            ")" if "(" in uar else "")

    rows = {}
    for line in table.splitlines()[2:]:
        name, uar, each, minutes = (c.strip() for c in line.strip("|").split("|"))
        assert key(uar) not in rows, f"two rows of docs/recipe.md's table read {key(uar)}"
        rows[key(uar)] = float(minutes)
        if each:
            runs = [float(v) for v in each.split(", ")]
            mean, sd = (float(v) for v in uar.split(" ± "))
            assert (round(statistics.mean(runs), 3), round(statistics.stdev(runs), 3)) == pytest.approx((mean, sd),
                                                                                                   abs=0.0011), name
    readme = (root / "README.md").read_text()
    recipe = readme[readme.index("| recipe | test UAR | CPU-min |"):].split("\n\n")[0]
    for line in recipe.splitlines()[2:]:
        _, uar, minutes = (c.strip() for c in line.strip("|").split("|"))
        assert key(uar) in rows, f"README's {key(uar)} is not in docs/recipe.md's table"
        assert float(minutes) == pytest.approx(rows[key(uar)], abs=0.5)
