"""Members side by side (finetune/parallel.py): results, output and progress come back to the parent; a
failing member stops the run, the members in flight with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetune.parallel import run_side_by_side

ROOT = Path(__file__).resolve().parents[2]


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


def in_step(x: int, bar) -> dict:
    from finetune.parallel import together

    together()
    return {"pid": os.getpid()}


def warns(x: int, bar) -> dict:
    import warnings

    warnings.warn("clip.wav: NaN/inf samples replaced by zeros", stacklevel=1)  # every member decodes it
    warnings.warn(f"member {x}'s own warning", stacklevel=1)
    return {"x": x}


def test_the_members_warnings_reach_the_parent_once_each_as_plain_lines() -> None:
    """A clip every member decodes had been warned about by each worker, raw ("windows.py:35: UserWarning")."""
    bar = Recorder()
    run_side_by_side([("a", warns, (1,)), ("b", warns, (2,))], 2, 1, bar)
    said = [line for line in bar.lines if line.startswith("warning: ")]
    assert sorted(said) == ["warning: clip.wav: NaN/inf samples replaced by zeros", "warning: member 1's own warning",
                            "warning: member 2's own warning"]


def test_gated_tasks_run_in_step_one_per_worker() -> None:
    """Quick tasks, two per kind: ungated, the worker that starts first may run both copies before its
    sibling's process is up (the estimate then times a kind alone, not side by side). Gated, never."""
    tasks = [(f"{i}:{j}", in_step, (0,)) for i in range(3) for j in range(2)]
    out = run_side_by_side(tasks, 2, 1, Recorder(), gated=True)
    for i in range(3):
        assert out[f"{i}:0"]["pid"] != out[f"{i}:1"]["pid"], out


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


SCRIPT = """
import os, sys, time
from finetune.parallel import run_side_by_side

class Bar:
    def update(self, n=1): pass
    def write(self, text): pass

def sleeper(folder, bar):
    open(os.path.join(folder, str(os.getpid())), "w").close()
    time.sleep(120)
    return {}

if __name__ == "__main__":
    run_side_by_side([("a", sleeper, (sys.argv[1],)), ("b", sleeper, (sys.argv[1],))], 2, 1, Bar())
"""


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited: only its parent's wait is missing
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_or_killed_run_leaves_no_worker_training(tmp_path, sig) -> None:
    """`kill` (SIGTERM) stops the members in flight as Ctrl-C does; after a SIGKILL of the parent, which
    runs no clean-up, the workers see it gone and end."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    pids = tmp_path / "pids"
    pids.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(pids)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 60
    while len(list(pids.iterdir())) < 2:
        assert time.time() < deadline and parent.poll() is None, "the workers did not start"
        time.sleep(0.1)
    workers = [int(p.name) for p in pids.iterdir()]
    workers += [c for c in children(parent.pid) if c not in workers]  # any helper process of the run too
    parent.send_signal(sig)
    parent.wait(timeout=30)
    deadline = time.time() + 15
    try:
        while any(alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(alive(w) for w in workers)
    finally:  # a failing check leaves nothing sleeping behind
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)
