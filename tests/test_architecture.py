"""The layering rule: the model library (`w2v2/*.py`) imports nothing from the application around it
(`w2v2.data`, `w2v2.synth`, `w2v2.bench`, `finetune`, `pretrain`), and `w2v2.data` nothing from the trainers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPLICATION = ("w2v2.data", "w2v2.training", "w2v2.synth", "w2v2.bench", "finetune", "pretrain")
MODEL_LIBRARY = sorted((ROOT / "w2v2").glob("*.py"))


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


def test_the_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\ndef f():\n    from w2v2.data.audio import load_audio\n    import finetune.train\n")
    assert offending(bad, APPLICATION) == ["finetune.train", "w2v2.data.audio", "w2v2.data.audio.load_audio"]
