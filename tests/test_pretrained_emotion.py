"""The shipped model that travels (w2v2/pretrained/emotion): it loads by name and as the default, fits the
size limit, says what it learned from, and its card's tables are the run files' figures."""

from __future__ import annotations

import pandas as pd
import torch

from finetune.travel import loco_table
from w2v2 import EmotionRecognizer
from w2v2.emotion.members import SHIPPED_CLASSIFIER, checkpoint_spec
from w2v2.emotion.travel import load_travel

EVALUATION_ONLY = {"savee", "turev-db", "urdu"}  # ../shared/data/README.md: may not train shipped weights


def test_the_default_model_is_the_one_that_travels_and_names_its_data() -> None:
    folder = checkpoint_spec(SHIPPED_CLASSIFIER)
    assert folder.name == "emotion"
    model, info = load_travel(folder)
    assert model.reads_mels and info["config"]["mel_weight"] == 0.3  # the log-mel CNN beside the descriptors
    assert set(info["trained_on"]) == {"ravdess", "ased", "indian-emospeech"}
    assert not EVALUATION_ONLY & set(info["trained_on"])
    assert sum(f.stat().st_size for f in folder.iterdir()) < 25 * 2**20
    card = (folder / "README.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and all(n in card for n in ("Livingstone", "Retta", "Indian"))
    # the read speech learnt as neutral: shippable corpora, each named with its licence, and as many clips
    assert all(n in card for n in ("LibriSpeech", "CC BY 4.0", "speechocean762", "Zhang", "LJ Speech", "public domain"))
    assert f"{info['neutral_speech']['clips']} clips of read speech" in card.replace("\n", " ")
    loco = pd.read_csv(folder / "loco.csv")
    trained_on = {name for row in loco.trained_on for name in row.split("+")}
    assert not EVALUATION_ONLY & trained_on  # evaluation-only corpora were only ever scored


def test_the_cards_tables_are_the_run_files_figures() -> None:
    folder = checkpoint_spec(SHIPPED_CLASSIFIER)
    card = (folder / "README.md").read_text()
    summary = pd.read_csv(folder / "loco_summary.csv")
    for normalise in ("speaker", "set", "clip"):
        assert loco_table(summary, normalise) in card, normalise
    runs = pd.read_csv(folder / "loco.csv")
    means = runs.groupby(["normalise", "test_corpus"]).uar.mean()
    for row in summary.itertuples():
        assert abs(means[row.normalise, row.test_corpus] - row.uar) < 1e-4  # the summary is the seeds' mean


def test_the_api_loads_the_default_and_says_no_speech_for_silence() -> None:
    rec = EmotionRecognizer.from_pretrained()
    p = rec.predict(torch.zeros(32000).numpy(), sample_rate=16000)
    assert p.label == "no speech" and abs(sum(p.probs.values()) - 1) < 1e-5


def test_the_readme_and_docs_give_the_run_files_figures() -> None:
    root = checkpoint_spec(SHIPPED_CLASSIFIER).parents[2]
    readme, docs = (root / "README.md").read_text(), (root / "docs" / "travel.md").read_text()
    summary = pd.read_csv(checkpoint_spec(SHIPPED_CLASSIFIER) / "loco_summary.csv")
    for normalise in ("speaker", "set", "clip"):
        rows = summary[summary.normalise == normalise]
        six = f"{rows.uar.mean():.3f}"
        five = f"{rows[rows.test_corpus != 'ravdess'].uar.mean():.3f}"
        assert six in readme and six in docs, (normalise, six)
        assert five in docs, (normalise, five)
    before = (root / "experiments" / "travel" / "results" / "before.txt").read_text()
    own = [float(line.split("UAR ")[1].split(" ")[0]) for line in before.splitlines() if "UAR" in line]
    assert len(own) == 5 and f"{sum(own) / 5:.3f}" in readme and f"{sum(own) / 5:.3f}" in docs


def test_the_readmes_python_example_runs_as_typed(capsys, monkeypatch) -> None:
    root = checkpoint_spec(SHIPPED_CLASSIFIER).parents[2]
    readme = (root / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  # the README's own example
    assert namespace["p"].label in namespace["p"].probs or namespace["p"].label == "no speech"
    assert len(namespace["many"]) == 3 and capsys.readouterr().out.startswith(namespace["p"].label)


def test_the_methods_table_is_the_grids_output() -> None:
    import importlib.util

    root = checkpoint_spec(SHIPPED_CLASSIFIER).parents[2]
    spec = importlib.util.spec_from_file_location("methods_table", root / "experiments/travel/methods_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.methods_table((root / "experiments/travel/results/methods.txt").read_text())
    assert table in (root / "docs" / "travel.md").read_text() and table.count("\n") >= 15


def test_the_init_comparison_in_the_docs_is_its_run_file() -> None:
    """docs/travel.md's `--init` table: every cell from experiments/results/emotion_init.txt."""
    root = checkpoint_spec(SHIPPED_CLASSIFIER).parents[2]
    text = (root / "experiments/results/emotion_init.txt").read_text()
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if "test clips" in line]
    cell = {(r[0].split()[0], r[1]): r for r in rows}
    docs = (root / "docs" / "travel.md").read_text()
    section = docs.split("## An emotion backbone for users who train", 1)[1].split("\n## ", 1)[0]
    for corpus, name in (("savee", "SAVEE"), ("turev-db", "TurEV-DB"), ("urdu", "Urdu")):
        small, multi = cell[corpus, "pretrained:small"], cell[corpus, "multi-corpus emotion backbone"]
        line = [c.strip() for c in next(x for x in section.splitlines() if x.startswith(f"| {name} (")).split("|")]
        assert line[2:6] == [small[2], multi[2], small[3], multi[3]]
        assert line[6] == f"{small[4]} / {multi[4]}"
        own = cell[corpus, "none: pretrained:emotion as shipped, per set"][4].split("; ")[1].split()[0]
        assert own in section
        rav = cell[corpus, "RAVDESS-fine-tuned backbone (emotion-ravdess member_1)"]
        assert f"{name} fine-tune {rav[2]}, probe {rav[3]}, ensemble {rav[4]}" in section
    gains = [float(cell[c, "multi-corpus emotion backbone"][2].split()[0])
             - float(cell[c, "pretrained:small"][2].split()[0]) for c in ("savee", "turev-db", "urdu")]
    assert f"+{sum(gains) / 3:.3f}" in section
