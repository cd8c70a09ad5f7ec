"""`python -m finetune serve`: a local web page that tells the emotions of a recording.

A person uploads an audio file or records from the microphone and sees the predicted emotion (or "no
speech"), the six probabilities (a bar chart and a table) and, for a recording longer than one window,
its emotion timeline with the per-window CSV to download. It is `predict` behind a page: the same
decoding and `EmotionRecognizer` (one recording, standardised alone), so the page and `predict` agree.

Design choices:
- Gradio (the ecosystem's convention for ML demos: upload, microphone and charts without writing
  JavaScript) as an optional extra, `pip install -e .[app]`; the library never imports it;
- the models load once, when the server starts, and stay in memory (an ensemble's members too);
- it listens on 127.0.0.1 unless --host says otherwise, with Gradio's analytics off (nothing leaves
  the machine);
- a bad upload (not audio, damaged, empty, too long) gets a sentence in the page, never a traceback.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from finetune.outputs import PROB_COLUMNS, file_row, write_csv
from finetune.plots import plot_timeline
from w2v2.checkpoint import PRETRAINED_DIR
from w2v2.data.audio import SAMPLE_RATE, AudioError
from w2v2.data.datasets import Item
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.recognizer import EmotionRecognizer, file_seconds, load_members, timeline_frame
from w2v2.emotion.windows import AudioCache
from w2v2.training import Precision

WINDOW_SECONDS = 8.0  # predict's default window (and half a window's hop)
CONCURRENCY = 2  # recordings processed at once (measured under load: docs/app.md)
QUEUE = 64  # uploads waiting beyond those; more are refused, so memory stays bounded
MAX_UPLOAD = "500mb"  # Gradio refuses bigger uploads in the page; the duration limit is --max-minutes
# uploads (Gradio's cache) and timelines to download are deleted once this old, checked as often: a recording
# is private, and a busy server's disk would fill
KEEP_SECONDS = 600


def prune(folder: Path, max_age: float = KEEP_SECONDS) -> None:
    """Remove the entries of `folder` last modified more than `max_age` seconds ago."""
    now = time.time()
    for entry in folder.iterdir():
        if now - entry.stat().st_mtime > max_age:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


@dataclass
class Result:
    """What the page shows for one recording: `message` alone when it could not be read."""

    message: str
    probs: dict[str, float] | None = None
    timeline_png: Path | None = None
    timeline_csv: Path | None = None


class Recognizer:
    """The models of --ckpt, loaded once; `__call__` turns an audio file into a `Result`."""

    def __init__(self, ckpts: list[Path], device: torch.device | None = None, max_minutes: float = 30.0,
                 window_seconds: float = WINDOW_SECONDS, precision: Precision = "fp32") -> None:
        self.device = device or torch.device("cpu")
        self.name = ", ".join(shown_name(c) for c in ckpts)
        self.recognizer = EmotionRecognizer(load_members(ckpts, self.device, keep_loaded=True), self.name,
                                            self.device, precision)
        self.models = self.recognizer.members
        self.max_minutes, self.window_seconds = max_minutes, window_seconds
        self.outputs = Path(tempfile.mkdtemp(prefix="w2v2-serve-"))  # timelines to download; gone at exit
        atexit.register(shutil.rmtree, self.outputs, ignore_errors=True)

    def __call__(self, path: str | Path | None) -> Result:
        if not path:
            return Result("Upload an audio file or record from the microphone first.")
        path = Path(path)
        name = path.name
        start = time.perf_counter()
        try:  # the limit from the header, before anything is decoded (a two-hour upload never fills memory)
            minutes = file_seconds(path) / 60
        except AudioError:
            minutes = 0.0  # unreadable header: the decoder below says what is wrong
        if minutes > self.max_minutes:
            return self.too_long(name, minutes)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wave = AudioCache([Item(id=path.stem, path=path)])[0]
        notes = [str(w.message).replace(str(path), name) for w in caught]
        if wave is None:
            problem = (notes[0].removeprefix("skipping ").removeprefix(f"{name}: ") if notes
                       else "it could not be decoded")
            return Result(f"**Could not read {name}**: {problem}. Upload a WAV, FLAC, OGG or MP3 recording.")
        minutes = wave.numel() / SAMPLE_RATE / 60
        if minutes > self.max_minutes:
            return self.too_long(name, minutes)
        pred = self.recognizer.predict_waves([wave], "clip", window_seconds=self.window_seconds)[0]
        row = file_row(path, pred)
        probs = {emotion: row[col] for emotion, col in zip(EMOTIONS, PROB_COLUMNS, strict=True)}
        result = Result(self.headline(name, row["label_name"], probs, pred.windows.shape[0], wave.numel(),
                                      time.perf_counter() - start, notes), probs)
        if pred.windows.shape[0] > 1:  # the emotion timeline, as predict --timeline writes it
            prune(self.outputs)
            folder = Path(tempfile.mkdtemp(dir=self.outputs))  # one per request: downloads keep the file's name
            df = timeline_frame(pred, wave.numel(), self.window_seconds, None)
            result.timeline_csv = folder / f"{path.stem}-timeline.csv"
            write_csv(df, result.timeline_csv)
            result.timeline_png = folder / f"{path.stem}-timeline.png"
            plot_timeline(df, result.timeline_png, name)
        return result

    def too_long(self, name: str, minutes: float) -> Result:
        return Result(f"**{name} is {minutes:.1f} minutes long**: this server takes recordings of up to "
                      f"{self.max_minutes:g} minutes (`--max-minutes`). Cut it, or use `python -m finetune "
                      "predict --timeline DIR` for long files.")

    def headline(self, name: str, label: str, probs: dict[str, float], windows: int, samples: int,
                 seconds: float, notes: list[str]) -> str:
        """The result as Markdown: the emotion, a table of the six probabilities, what was computed."""
        lines = [f"## {label}", "", f"**{name}**: {samples / SAMPLE_RATE:.1f} s of audio, {windows} window(s) of "
                 f"{self.window_seconds:g} s, {len(self.models)} model(s), {seconds:.1f} s.", "",
                 "| emotion | probability |", "|---|---|"]
        lines += [f"| {emotion} | {p:.4f} |" for emotion, p in sorted(probs.items(), key=lambda kv: -kv[1])]
        lines += [f"\n_Note: {n}_" for n in notes]
        return "\n".join(lines)


def shown_name(ckpt: Path) -> str:
    """pretrained:NAME for a shipped model, else the path as given."""
    return f"pretrained:{ckpt.name}" if ckpt.parent == PRETRAINED_DIR else str(ckpt)


def build_app(recognizer: Recognizer, concurrency: int = 1):
    """The Gradio page around `recognizer`."""
    import gradio as gr

    def run(path: str | None):
        try:
            r = recognizer(path)
        except Exception as e:  # the page says what went wrong; the server keeps serving
            r = Result(f"**Could not process the recording**: {type(e).__name__}: {e}")
        has_timeline = r.timeline_png is not None
        return (r.message, r.probs, gr.update(value=str(r.timeline_png) if has_timeline else None,
                                              visible=has_timeline),
                gr.update(value=str(r.timeline_csv) if has_timeline else None, visible=has_timeline))

    with gr.Blocks(title="w2v2: emotion in speech", delete_cache=(KEEP_SECONDS, KEEP_SECONDS)) as app:
        gr.Markdown("# Emotion in speech\nUpload a recording or record one; w2v2 tells which of six emotions "
                    f"(angry, fear, sad, disgust, neutral, happy) it hears. Model: {recognizer.name} "
                    f"({len(recognizer.models)} model(s) averaged).")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Recording",
                                 elem_id="audio")
                button = gr.Button("Recognise emotion", variant="primary", elem_id="run")
            with gr.Column():
                chart = gr.Label(num_top_classes=len(EMOTIONS), label="Probabilities", elem_id="chart")
        result = gr.Markdown(elem_id="result")
        timeline = gr.Image(label="Emotion timeline", visible=False, elem_id="timeline")
        csv = gr.File(label="Per-window probabilities (CSV)", visible=False, elem_id="timeline_csv")
        gr.on([audio.upload, audio.stop_recording, button.click], run, inputs=audio,
              outputs=[result, chart, timeline, csv], concurrency_limit=concurrency)
        audio.clear(lambda: ("", None, gr.update(value=None, visible=False), gr.update(value=None, visible=False)),
                    outputs=[result, chart, timeline, csv])  # Clear empties the result too
    return app


def serve(ckpts: list[Path], host: str = "127.0.0.1", port: int = 7860, max_minutes: float = 30.0,
          device: torch.device | None = None, precision: Precision = "fp32", block: bool = True,
          concurrency: int = CONCURRENCY):
    """Load the models, then serve the page until interrupted (block=False: return the running app).
    `concurrency` recordings are processed at once; up to QUEUE more wait their turn, and further uploads
    are told the server is busy (memory stays bounded: docs/app.md has the measurement)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit("error: the web app needs Gradio: pip install -e '.[app]'") from None
    recognizer = Recognizer(ckpts, device, max_minutes, precision=precision)
    print(f"loaded {len(recognizer.models)} model(s); serving on http://{host}:{port} (Ctrl+C stops)", flush=True)
    app = build_app(recognizer, concurrency)
    app.queue(max_size=QUEUE)
    app.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD, prevent_thread_lock=not block,
               quiet=True, show_error=False)
    return app
