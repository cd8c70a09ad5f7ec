"""Members side by side (finetune/parallel.py): results, output and progress come back to the parent; a
failing member stops the run, the members in flight with it."""

from __future__ import annotations

import time

import pytest

from finetune.parallel import run_side_by_side


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0.0

    def update(self, n: float = 1) -> None:
        self.n += n

    def write(self, text: str) -> None:
        self.lines.append(text)


def fine(x: int, bar) -> dict:  # module level: a spawned worker imports it by name
    bar.write(f"member {x} says")
    print(f"member {x} prints")
    bar.update(2)
    return {"x": x}


def broken(x: int, bar) -> dict:
    raise ValueError(f"member {x}: its data is broken")


def slow(x: int, bar) -> dict:
    time.sleep(60)
    return {"x": x}


def test_results_output_and_progress_come_back_to_the_parent() -> None:
    bar = Recorder()
    out = run_side_by_side([("a", fine, (1,)), ("b", fine, (2,))], 2, 1, bar)
    assert out == {"a": {"x": 1}, "b": {"x": 2}}
    assert sorted(bar.lines) == ["[a] member 1 prints", "[a] member 1 says", "[b] member 2 prints",
                                 "[b] member 2 says"]
    assert bar.n == 4


def test_a_failing_member_stops_the_run_and_the_members_in_flight() -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match="member 2: its data is broken"):
        run_side_by_side([("slow", slow, (1,)), ("bad", broken, (2,)), ("never", fine, (3,))], 2, 1, Recorder())
    assert time.perf_counter() - start < 30  # the slow member was stopped, not waited for
