"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from w2v2.synth import generate_corpus


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and lose a lot when the other core is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Callable[..., Path]:
    """A competition-layout synthetic corpus per (clips, speakers, seed), generated once per session."""
    made: dict[tuple[int, int, int], Path] = {}

    def corpus(clips: int, speakers: int, seed: int) -> Path:
        if (clips, speakers, seed) not in made:
            made[clips, speakers, seed] = tmp_path_factory.mktemp(f"corpus{clips}_{speakers}_{seed}")
            generate_corpus(made[clips, speakers, seed], clips=clips, speakers=speakers, seed=seed)
        return made[clips, speakers, seed]

    return corpus
