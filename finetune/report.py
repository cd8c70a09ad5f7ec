"""`python -m finetune report RUN`: one page that explains a run (a model, a probe, a k-fold or ensemble parent).

Design choices:
- one self-contained HTML file with the figures embedded as base64 PNGs: it opens in any browser, is
  mailed or attached as a single file, and cannot lose its pictures the way Markdown + PNG files can;
- the page reads the run's files and recomputes only what they lack: headline metrics, per-class rows
  and confusion matrices are metrics.json's own (precision is its confusion matrix's columns); the
  probability files are argmax-checked against them, and any disagreement is printed on the page;
- the bootstrap interval resamples the clips of metrics.json's confusion matrix (`finetune.analysis`);
- the one costly step, the validation embeddings, runs a forward pass of one model over its validation
  clips and is skipped with a note when the audio cannot be found (`--data` points at a moved corpus);
- an ensemble parent's seeds differ in validation speakers; the members of one seed share them. The
  parent's validation estimate is each seed's ensemble (its members' probabilities averaged) on that
  seed's clips, rows of all seeds pooled (`finetune.outputs.seed_validation`), shown with a row per seed
  beside each member's scores; k-fold parents have out-of-fold probabilities instead. The embeddings are
  the first member's;
- figures stay readable for 9 members: learning curves get one axis per kind (a fine-tune's epochs, a
  probe's and a tiny model's are not the same unit), layer weights a grid of small panels.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from finetune import analysis
from finetune import report_plots as plots
from finetune.folds import validation_words
from finetune.metrics import confusion_matrix
from finetune.outputs import PROB_COLUMNS, check_output_file, frame_metrics, seed_validation
from w2v2.checkpoint import atomic_write
from w2v2.data.datasets import Dataset, DatasetError, Item, load_dataset
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.members import member_folders, travel_folder

SPLIT_NAMES = {"validation": "validation", "oof": "out-of-fold", "test": "test"}


@dataclass
class Report:
    """What the page shows, gathered before any HTML is written."""

    run: Path
    title: str
    metrics: dict[str, dict]  # split -> the metrics the tables show (metrics.json's)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (heading, HTML body)
    notes: list[str] = field(default_factory=list)  # what could not be shown, and why


@dataclass(frozen=True)
class Run:
    """A finished run folder as written by `python -m finetune train`."""

    path: Path
    config: dict  # config.yaml
    metrics: dict  # metrics.json
    models: list[Path]  # the folders holding a best/: the run itself, or an ensemble parent's members

    @property
    def parent(self) -> bool:
        return self.models != [self.path]

    def splits(self) -> dict[str, dict]:
        """metrics.json's full metrics per split (validation, out-of-fold, test), as the run wrote them."""
        return {s: self.metrics[s] for s in SPLIT_NAMES if "confusion_matrix" in self.metrics.get(s, {})}


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: no {path.name}; not a finished fine-tuning run")
    return json.loads(path.read_text())


def read_run(path: Path) -> Run:
    if (path / "loco_summary.csv").is_file() or ((path / "model").is_dir() and not (path / "config.yaml").exists()):
        raise FileNotFoundError(f"{path}: a travelling model's run (several --data): its figures are "
                                f"{path / 'loco_summary.csv'} and the lines `train` printed; report covers "
                                "fine-tuning runs")
    metrics = read_json(path / "metrics.json")
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path}: no config.yaml; not a finished fine-tuning run")
    return Run(path, yaml.safe_load((path / "config.yaml").read_text()), metrics, member_folders(path) or [path])


def is_probe(model: Path) -> bool:
    return travel_folder(model) is None and bool(read_json(model / "best" / "w2v2.json").get("probe"))


def networks(run: Run) -> list[Path]:
    """The run's models that are networks (a descriptors member has no learning curve, layers or embeddings)."""
    return [m for m in run.models if travel_folder(m) is None]


def find_path(text: str, run: Path) -> Path | None:
    """A path a run recorded, relative to where training ran: tried as given, then from each folder above
    the run (a run under runs/ was trained from the folder that holds runs/)."""
    for base in (Path.cwd(), *run.resolve().parents):
        if (base / text).exists():
            return base / text
    return None


def load_data(run: Run, data: Path | None, notes: list[str]) -> Dataset | None:
    """The run's dataset (test labels, speakers, audio): --data, else the one its (first) model recorded."""
    recorded = read_json(run.models[0] / "metrics.json")
    root = data or (find_path(recorded["data"], run.path) if "data" in recorded else None)
    if root is None:
        notes.append("the training data was not found (pass --data DIR): no test labels, speakers or audio")
        return None
    try:
        return load_dataset(root, None if data else recorded.get("layout"))
    except (DatasetError, FileNotFoundError) as e:
        notes.append(f"the dataset {root} could not be read: {e}")
        return None


def labelled_probs(run: Run, data: Dataset | None) -> dict[str, pd.DataFrame]:
    """Per split, the run's probability file with a `label` column (test's from the dataset's test labels)."""
    frames = {}
    if (run.path / "val_probs.csv").is_file():  # a model's own, or an ensemble parent's seeds
        frames["validation"] = pd.read_csv(run.path / "val_probs.csv")
    elif run.parent and "oof" not in run.metrics:  # a parent trained before it wrote its seeds' file
        if (seeds := seed_validation(run.path, run.metrics["members"])) is not None:
            frames["validation"] = seeds
    if (run.path / "oof_probs.csv").is_file():
        frames["oof"] = pd.read_csv(run.path / "oof_probs.csv")
    if (run.path / "test_probs.csv").is_file() and data is not None and data.test_labels:
        test = pd.read_csv(run.path / "test_probs.csv")
        test = test[test["id"].isin(data.test_labels)].reset_index(drop=True)
        frames["test"] = test.assign(label=test["id"].map(data.test_labels),
                                     path=test["id"].map({it.id: str(it.path) for it in data.test}))
    return frames


def check_against_metrics(frames: dict[str, pd.DataFrame], metrics: dict[str, dict], notes: list[str]) -> None:
    """The probability files must give metrics.json's confusion matrices; a note names any that do not
    (a 6-decimal CSV can tie where the model did not)."""
    for split, df in frames.items():
        if split in metrics:
            cm = confusion_matrix(df["label"].to_numpy(), df[PROB_COLUMNS].to_numpy().argmax(1))
            if cm.tolist() != metrics[split]["confusion_matrix"]:
                notes.append(f"{SPLIT_NAMES[split]}: the probability file's argmax differs from metrics.json's "
                             "confusion matrix; the tables and matrices show metrics.json's")


def recipe_lines(run: Run, data: Dataset | None) -> list[str]:
    """The recipe in plain words: init, data, clips, speakers, epochs, time."""
    cfg, first = run.config, read_json(run.models[0] / "metrics.json")
    kinds = [m["kind"] for m in run.metrics["members"]] if run.parent else \
        ["descriptors" if travel_folder(run.path) else "probe" if is_probe(run.path) else "finetune"]
    words = {"finetune": f"fine-tune(s) of {cfg['init']}", "probe": f"linear probe(s) of the frozen {cfg['init']}",
             "scratch": "tiny model(s) from scratch", "descriptors": "descriptors head(s)"}
    weights = run.metrics.get("kind_weights")
    said = {"finetune": "fine-tunes", "probe": "probes", "scratch": "tiny models", "descriptors": "descriptors heads"}
    lines = [" + ".join(f"{kinds.count(k)} {w}" for k, w in words.items() if k in kinds)
             + ("; their probabilities averaged" if run.parent else "")
             + ("; each kind weighted as it predicted the validation clips: " + ", ".join(
                 f"{said[k]} {w:.1f}" for k, w in weights.items()) if weights else "")]
    lines.append(f"data: {first.get('data', '?')} ({first.get('layout', '?')} layout)"
                 + (f", {len(data.train)} labelled clips" if data else "")
                 + (f", {len(data.test)} test clips" if data and data.test else ""))
    lines.append(validation_line(run, data))
    if "finetune" in kinds or "scratch" in kinds:
        lines.append(f"fine-tuning: up to {cfg['epochs']} epoch(s) of {cfg['crop_seconds']} s crops, batch "
                     f"{cfg['batch_size']}, CNN {'frozen' if cfg['freeze_feature_encoder'] else 'trained'}")
    if "probe" in kinds:
        lines.append(f"probe: {cfg['probe_epochs']} epochs on each clip's pooled hidden states")
    if "descriptors" in kinds:
        lines.append("descriptors heads: linear heads over 189 acoustic descriptors of each clip, standardised per "
                     "speaker where the data names speakers (the travelling model's recipe)")
    member = run.models[0] / "config.yaml"  # what the members ran with (side by side: their own threads)
    ran = yaml.safe_load(member.read_text()) if run.parent and member.is_file() else cfg
    side = f"{ran['workers']} members at a time, " if (ran.get("workers") or 1) > 1 else ""
    sessions = run.metrics.get("sessions", 1)
    over = f" over {sessions} sessions (resumed)" if sessions > 1 else ""
    lines.append(f"time: {run.metrics['train_seconds'] / 60:.1f} min wall clock{over} (device: {cfg.get('device')}, "
                 f"{side}{ran.get('threads') or 'all'} thread(s){' each' if side else ''})")
    return lines


def validation_line(run: Run, data: Dataset | None) -> str:
    """How validation was split, in the words training used (recomputed from the data where it is at hand:
    runs before those words were exact said "its own validation speakers" of random splits too)."""
    recipe = run.path / "recipe.json"
    val_speakers = json.loads(recipe.read_text()).get("val_speakers") if recipe.is_file() else None
    speaker = {it.id: it.speaker for it in data.train} if data else {}
    unit = {m["name"]: f"fold {m['name'].split('_')[1]}" if "oof" in run.metrics else f"seed {m['seed']}"
            for m in run.metrics.get("members", [])}
    counts: dict[str, str] = {}
    shares: list[float] = []
    for model in run.models:
        ids = pd.read_csv(model / "val_probs.csv")["id"]
        shares.append(len(ids) / max(1, len(data.train)) if data else 0.0)
        speakers = {speaker.get(i) for i in ids} - {None}
        counts.setdefault(unit.get(model.name, ""), f"{len(ids)} clips"
                          + (f" of {len(speakers)} speaker(s)" if speakers else ""))
    if "oof" in run.metrics or (run.parent and data is None):
        how = run.metrics["recipe"]
    else:
        words = validation_words(data.train, run.config["val_fraction"], val_speakers, own=run.parent,
                                 shares=shares) if data else ""
        how = f"{len(counts)} seed(s), each validating on {words}" if run.parent else words
    sizes = ", ".join(f"{u}: {c}" if u else c for u, c in counts.items())
    return f"validation: {how}; {sizes}; the epoch of best validation UAR kept".replace(": ;", ":")


def table(header: list[str], rows: list[list[object]]) -> str:
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))  # noqa: E731
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def metrics_section(metrics: dict[str, dict]) -> str:
    """Headline metrics with UAR's bootstrap interval, then per-class precision, recall and F1 per split."""
    rows = []
    for split, m in metrics.items():
        low, high = analysis.bootstrap_uar(np.asarray(m["confusion_matrix"]))
        rows.append([SPLIT_NAMES[split], m["n"], m["accuracy"], m["uar"], f"{low:.3f} – {high:.3f}", m["macro_f1"]])
    out = table(["split", "clips", "accuracy", "UAR", "UAR 95% CI", "macro-F1"], rows)
    out += ("<p>UAR (unweighted average recall) is the mean of the six recalls. The interval is the bootstrap's "
            "(clips resampled 2000 times): runs whose intervals overlap widely may not really differ.</p>")
    for split, m in metrics.items():
        precision = analysis.precision(np.asarray(m["confusion_matrix"]))
        recall = {k: "–" if v is None else v for k, v in m["per_class_recall"].items()}
        out += f"<h3>{SPLIT_NAMES[split]}</h3>" + table(
            ["emotion", "clips", "precision", "recall", "F1"],
            [[e, m["support"][e], float(p), recall[e], m["per_class_f1"][e]] for e, p in zip(EMOTIONS, precision,
                                                                                             strict=True)])
    return out


def seeds_section(frame: pd.DataFrame) -> str:
    """Each seed's ensemble on its own validation clips, one row per seed."""
    rows = []
    for seed, df in frame.groupby("seed"):
        m = frame_metrics(df)
        rows.append([f"seed {seed}", m["n"], m["accuracy"], m["uar"], m["macro_f1"]])
    return "<h3>each seed's ensemble</h3>" + table(["validation", "clips", "accuracy", "UAR", "macro-F1"], rows) + (
        "<p>The members of one seed (its kinds) validate on the same clips, which none of them trained on: "
        "their probabilities averaged are that seed's ensemble. The validation rows above pool the seeds' "
        "clips (a clip validated by two seeds counts twice). Each member also chose its best epoch on these "
        "clips, so the estimate is slightly optimistic; the ensemble of every seed, which a submission uses, "
        "has no clip left to validate on.</p>")


def confusion_section(metrics: dict[str, dict]) -> str:
    return "".join(image(plots.data_uri(plots.confusion_figure(m["confusion_matrix"], list(EMOTIONS),
                                                               SPLIT_NAMES[s])), f"{s} confusion matrices")
                   for s, m in metrics.items())


def curves_section(run: Run) -> str:
    """Learning curves of every model; for an ensemble, each member's UAR beside the ensemble's."""
    name = lambda m: m.name if run.parent else "validation"  # noqa: E731
    histories = {name(m): [json.loads(line) for line in (m / "history.jsonl").read_text().splitlines() if line]
                 for m in networks(run)}
    best = {name(m): read_json(m / "metrics.json")["best_epoch"] for m in networks(run)}
    kinds = {m["name"]: m["kind"] for m in run.metrics["members"]} if run.parent else None
    out = image(plots.data_uri(plots.curves_figure(histories, best, kinds)), "learning curves (star: the kept epoch)") \
        if histories else "<p>A descriptors head trains a fixed number of epochs: no learning curve.</p>"
    if run.parent:
        members = run.metrics["members"]
        ensemble = {SPLIT_NAMES[s]: m["uar"] for s, m in run.splits().items()}
        fig = plots.members_figure([m["name"] for m in members], [m["validation"]["uar"] for m in members],
                                   [m.get("test", {}).get("uar") for m in members], ensemble)
        out += image(plots.data_uri(fig), "members and ensemble") + table(
            ["member", "kind", "seed", "best epoch", "validation clips", "validation UAR", "test UAR", "seconds"],
            [[m["name"], m["kind"], m["seed"], "–" if m["kind"] == "descriptors" else m["best_epoch"],
              m["validation"]["n"], m["validation"]["uar"],
              m.get("test", {}).get("uar", "–"), f"{m['seconds']:.0f}"] for m in members]
            + [[f"ensemble ({s})", "", "", "", m["n"], "", m["uar"], ""] for s, m in run.splits().items()])
    return out


def layers_section(run: Run, notes: list[str]) -> str | None:
    weights = {m.name: w for m in networks(run) if (w := analysis.layer_weights(m / "best")) is not None}
    if not weights:
        notes.append("no model has a weighted layer sum: no layer weights to show")
        return None
    return image(plots.data_uri(plots.layer_weights_figure(weights)), "layer weights") + (
        "<p>The head's softmax weights over the backbone's hidden states: where the bars rise above uniform, "
        "the emotion information the head uses sits.</p>")


def clip_items(val: pd.DataFrame, model: Path, data: Dataset | None) -> list[Item] | None:
    """The validation clips as items whose audio exists (the dataset's paths by id where --data moved it);
    None when any is missing."""
    where = {it.id: it.path for it in data.train} if data else {}
    paths = [where.get(i) or find_path(p, model) for i, p in zip(val["id"], val["path"], strict=True)]
    if any(p is None or not Path(p).is_file() for p in paths):
        return None
    return [Item(i, Path(p), int(y)) for i, p, y in zip(val["id"], paths, val["label"], strict=True)
            if p is not None]  # all of them (above)


def embeddings_section(run: Run, data: Dataset | None, notes: list[str]) -> str | None:
    """PCA of the validation clips' utterance embeddings (the first member's for an ensemble)."""
    from w2v2.checkpoint import load_model
    from w2v2.model import Wav2Vec2ForClassification

    if not networks(run):
        notes.append("no network among the models: no embedding picture")
        return None
    model_dir = networks(run)[0]
    val = pd.read_csv(model_dir / "val_probs.csv")
    items = clip_items(val, model_dir, data)
    if items is None:
        notes.append("the validation audio was not found (pass --data DIR): no embedding picture")
        return None
    model = load_model(model_dir / "best").eval()
    assert isinstance(model, Wav2Vec2ForClassification)  # a fine-tuning run's best/
    window = yaml.safe_load((model_dir / "config.yaml").read_text())["window_seconds"]
    xy, share = analysis.pca_2d(analysis.utterance_embeddings(model, items, window))
    fig = plots.embedding_figure(xy, share, val["label"].to_numpy(), val[PROB_COLUMNS].to_numpy().argmax(1),
                                 list(EMOTIONS))
    whose = f"{html.escape(model_dir.name)}'s " if run.parent else "the "
    return image(plots.data_uri(fig), "validation embeddings") + (
        f"<p>{whose}{len(items)} validation clips: each clip's hidden states averaged over its frames and mixed "
        "as the head mixes them, on their two principal components. Clusters that overlap are emotions the "
        "model confuses; ringed clips were misclassified.</p>")


def calibration_section(frames: dict[str, pd.DataFrame]) -> str:
    """Per labelled split: reliability diagram, ECE and the clips the model was most confidently wrong about."""
    out = ""
    for split, df in frames.items():
        labels, probs = df["label"].to_numpy(), df[PROB_COLUMNS].to_numpy()
        cal = analysis.calibration(labels, probs)
        wrong = analysis.confidently_wrong(labels, probs)
        out += f"<h3>{SPLIT_NAMES[split]}: ECE {cal.ece:.3f}</h3>" + image(
            plots.data_uri(plots.reliability_figure(cal, SPLIT_NAMES[split])), f"{split} reliability") + table(
            ["id", "path", "true", "predicted", "probability"],
            [[df["id"][i], df["path"][i] if "path" in df else "–", EMOTIONS[t], EMOTIONS[p], q]
             for i, t, p, q in wrong])
    return out + ("<p>ECE (expected calibration error): the gap between confidence and accuracy, averaged "
                  "over ten confidence bins weighted by their clips; 0 is perfectly calibrated.</p>")


def build_report(path: Path, data: Path | None = None) -> Report:
    """Everything the page shows about the run folder `path`."""
    run = read_run(path)
    notes: list[str] = []
    dataset = load_data(run, data, notes)
    frames = labelled_probs(run, dataset)
    metrics = run.splits()
    if "validation" in frames and "validation" not in metrics:  # a parent trained before it scored its seeds
        metrics = {"validation": frame_metrics(frames["validation"]), **metrics}
    check_against_metrics(frames, metrics, notes)
    kind = "ensemble" if run.parent else ("descriptors head" if travel_folder(path) else "probe" if is_probe(path)
                                          else "model")
    report = Report(path, f"{kind} {path.name}", metrics, notes=notes)
    report.sections.append(("Recipe", "<ul>" + "".join(f"<li>{html.escape(s)}</li>"
                                                        for s in recipe_lines(run, dataset)) + "</ul>"))
    if metrics:
        seeds = seeds_section(frames["validation"]) if run.parent and "validation" in frames else ""
        report.sections += [("Metrics", metrics_section(metrics) + seeds),
                            ("Confusion matrices", confusion_section(metrics))]
    report.sections.append(("Learning curves" + (" and members" if run.parent else ""), curves_section(run)))
    optional = [("Which layers carry emotion", layers_section(run, notes)),
                ("Validation embeddings (PCA)", embeddings_section(run, dataset, notes)),
                ("Calibration", calibration_section(frames) if frames else None)]
    report.sections += [(title, body) for title, body in optional if body is not None]
    return report


STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:.5em 0}")


def render(report: Report) -> str:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in report.sections)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(report.title)}</h1>"
            f"<p>{html.escape(str(report.run))}</p>{body}" + (f"<h2>Not shown</h2><ul>{notes}</ul>" if notes else "")
            + "</body></html>")


def write_report(path: Path, out: Path | None = None, data: Path | None = None) -> Path:
    """Write the page of run folder `path` to `out` (default RUN/report.html); returns its path."""
    out = out or path / "report.html"
    read_run(path)  # not a run: say so before checking where the page goes
    check_output_file(out, "--out")  # before the embeddings' forward pass, not after
    report = build_report(path, data)
    page = render(report)
    atomic_write(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))  # whole or not at all
    return out
