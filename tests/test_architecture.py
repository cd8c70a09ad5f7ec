"""The layering rule: the model library (`w2v2/*.py`) imports nothing from the application around it
(`w2v2.data`, `w2v2.synth`, `w2v2.bench`, `finetune`, `pretrain`), `w2v2.data` nothing from the trainers,
the inference layer (`w2v2.emotion`, under the CLI, the web app and the API) nothing from the commands, and
the application (`finetune/` but its commands) no command. The package's `__init__` is its public face:
the model's classes and `EmotionRecognizer`, nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPLICATION = ("w2v2.data", "w2v2.training", "w2v2.synth", "w2v2.bench", "finetune", "pretrain")
MODEL_LIBRARY = sorted(p for p in (ROOT / "w2v2").glob("*.py") if p.name != "__init__.py")


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def offending(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imports(path) if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_the_model_library_is_the_papers_modules() -> None:
    names = {p.stem for p in MODEL_LIBRARY}
    assert {"feature_encoder", "quantizer", "masking", "context", "losses", "heads", "model"} <= names
    assert not names & {"datasets", "audio", "labels", "metrics", "batching", "synth", "voice", "bench"}


@pytest.mark.parametrize("path", MODEL_LIBRARY, ids=lambda p: p.name)
def test_model_library_imports_nothing_from_the_application(path: Path) -> None:
    assert offending(path, APPLICATION) == []


@pytest.mark.parametrize("path", MODEL_LIBRARY, ids=lambda p: p.name)
def test_model_library_parses_no_command_line(path: Path) -> None:
    assert offending(path, ("argparse",)) == []  # CLIs and config files: w2v2.training.cli


@pytest.mark.parametrize("path", sorted((ROOT / "w2v2" / "data").glob("*.py")), ids=lambda p: p.name)
def test_data_plumbing_imports_no_trainer_or_tool(path: Path) -> None:
    assert offending(path, ("finetune", "pretrain", "w2v2.synth", "w2v2.bench")) == []


@pytest.mark.parametrize("path", sorted((ROOT / "w2v2" / "emotion").glob("*.py")), ids=lambda p: p.name)
def test_the_inference_layer_imports_no_command(path: Path) -> None:
    assert offending(path, ("finetune", "pretrain", "w2v2.synth", "w2v2.bench", "argparse")) == []


# the commands: the CLI, the web app (serve) and the measurements that run commands themselves
COMMANDS = ("finetune.__main__", "finetune.app", "finetune.compare", "finetune.cost", "finetune.gpu_check")
APPLICATION_MODULES = sorted(p for p in (ROOT / "finetune").glob("*.py")
                             if f"finetune.{p.stem}" not in COMMANDS and p.name != "__init__.py")


@pytest.mark.parametrize("path", APPLICATION_MODULES, ids=lambda p: p.name)
def test_the_application_imports_no_command(path: Path) -> None:
    assert offending(path, COMMANDS) == []


def test_the_package_exports_the_model_and_the_recognizer_only() -> None:
    allowed = {f"w2v2.{p.stem}" for p in MODEL_LIBRARY} | {"w2v2.emotion.recognizer"}
    modules = {m for m in imports(ROOT / "w2v2" / "__init__.py") if m.startswith("w2v2.")}
    assert {m.rsplit(".", 1)[0] if m not in allowed else m for m in modules} <= allowed


def test_the_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\ndef f():\n    from w2v2.data.audio import load_audio\n    import finetune.train\n")
    assert offending(bad, APPLICATION) == ["finetune.train", "w2v2.data.audio", "w2v2.data.audio.load_audio"]
