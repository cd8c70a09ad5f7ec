"""Members trained side by side: `workers=N` (0 = as many as the CPU's cores and memory allow).

Design choices:
- a recipe's members are independent (each builds its model after seeding its own generators,
  `finetune.model.build_classifier`), so a member gives the same numbers whether it trains alone or beside
  others, at the same thread count (a test holds them equal);
- on a CPU, one member per core with one thread each keeps every core busy: small models and batches
  gain less from a second thread than from a second member (docs/benchmark.md has the figures); on a
  GPU, members run one after another (they would share one device);
- workers are spawned processes (no forked torch state); each sends its progress, its epoch lines and
  everything it prints to the parent through a queue, so the parent's one progress bar and its output
  stay whole, in the order things happened, and a test that captures the output sees them;
- a member that fails, or a stop, ends the run with its own error: members not started are cancelled and
  those in flight stopped; finished members keep their folders and the others their last finished
  epoch, so `train --resume` continues with the rest. A stop is Ctrl-C or SIGTERM (`kill`, a scheduler,
  `docker stop`); a parent killed outright (SIGKILL, out of memory) is seen by its workers, which end
  within a second instead of training on for nobody.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queues
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from w2v2.training import resolve_device

GB_PER_WORKER = 3.0  # memory a training member may need (the larger of pretrained:small's and the tiny model's)

_queue: Any = None  # in a worker: where its progress and output go
_prefix = ""  # in a worker: the member whose lines these are ("[member_2_probe] "), as members interleave
_gate: Any = None  # in a worker of a gated run: the barrier `together` waits at


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_bytes() -> int | None:
    """Memory this machine has free (Linux's MemAvailable; None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def plan_workers(workers: int, threads: int, members: int, device: str) -> tuple[int, int]:
    """(members trained at once, torch threads of each) for `workers` (0: auto) and `threads` (0: auto)."""
    if members <= 1 or resolve_device(device).type != "cpu":
        return 1, threads
    cores = cpu_count()
    if workers == 0:
        memory = available_bytes()
        workers = min(members, max(1, cores // max(threads, 1)),
                      max(1, int(memory / 2**30 // GB_PER_WORKER)) if memory is not None else members)
    workers = min(workers, members)
    return workers, threads or max(1, cores // workers)


class QueueBar:
    """A worker's stand-in for the parent's progress bar: update, write and set_postfix go to the parent."""

    def update(self, n: float = 1) -> None:
        _queue.put(("update", n))

    def write(self, text: str) -> None:
        _queue.put(("write", _prefix + text))

    def set_postfix(self, **_: Any) -> None:
        pass

    def close(self) -> None:
        pass


class QueueWriter:
    """A worker's stdout: whole lines to the parent."""

    def __init__(self) -> None:
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            _queue.put(("write", _prefix + line))
        return len(text)

    def flush(self) -> None:
        pass


def _watch_parent(parent: int) -> None:
    """End this worker when its parent is gone (re-parented: a killed parent runs no clean-up)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _start_worker(queue: Any, threads: int, gate: Any = None) -> None:
    global _queue, _gate
    _queue, _gate = queue, gate
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    torch.set_num_threads(threads)
    os.environ["W2V2_PROGRESS"] = "off"  # the parent's bar speaks for every member
    sys.stdout = QueueWriter()  # type: ignore[assignment]
    warnings.simplefilter("once")
    warnings.showwarning = _send_warning  # to the parent, which says each once, as "warning: ...", not raw


def _send_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    _queue.put(("warn", str(message)))


def _call(key: str, task: Callable[..., dict], args: tuple) -> dict:
    global _prefix
    _prefix = f"[{key}] "
    return task(*args, QueueBar())


def together(timeout: float = 300.0) -> None:
    """In a task of `run_side_by_side(..., gated=True)`: wait until every worker has reached this point, so
    that tasks meant to share the cores do (a worker that started first would otherwise finish its task
    and take its sibling's too, before the sibling's process is up). A broken or timed-out gate lets all go."""
    if _gate is not None:
        try:
            _gate.wait(timeout)
        except threading.BrokenBarrierError:
            pass


def run_side_by_side(tasks: list[tuple[str, Callable[..., dict], tuple]], workers: int, threads: int, bar: Any,
                     gated: bool = False) -> dict[str, dict]:
    """Run `task(*args, bar)` for each (key, task, args) in `workers` processes of `threads` threads;
    returns each key's result. The parent's `bar` receives the workers' progress and output. gated: the
    tasks may call `together()` to start in step, `workers` at a time."""
    ctx = multiprocessing.get_context("spawn")
    # a plain queue handed to each worker as it starts: a Manager's server process would outlive a killed parent
    queue = ctx.Queue()
    said: set[str] = set()  # warnings relayed so far: a clip every member decodes is warned about once
    gate = ctx.Barrier(workers) if gated else None
    with stop_on_sigterm(), ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker,
                                                initargs=(queue, threads, gate)) as pool:
        futures: dict[Future, str] = {pool.submit(_call, key, task, args): key for key, task, args in tasks}
        results: dict[str, dict] = {}
        pending: Iterable[Future] = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                relay(queue, bar, said)
                for future in done:
                    results[futures[future]] = future.result()  # a member's error stops the run
        except BaseException:  # a member's error or a stop (Ctrl-C) stops the members in flight too:
            relay(queue, bar, said)  # each has its last finished epoch on disk, and `train --resume` continues it
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        relay(queue, bar, said)
    # a worker's queue flushes from a thread of its own: the last lines of a member that finished just now
    # may reach the pipe only as its process exits (at the pool's shutdown above); read them too
    relay(queue, bar, said)
    return results


@contextlib.contextmanager
def stop_on_sigterm() -> Any:
    """SIGTERM raises SystemExit (as Ctrl-C raises KeyboardInterrupt), so a stopped run stops its workers
    too; only where a handler can be set (the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def relay(queue: Any, bar: Any, said: set[str]) -> None:
    """Everything the workers sent so far, to the parent's bar and output; each distinct warning once (`said`:
    those of this run already written)."""
    while True:
        try:
            what, value = queue.get_nowait()
        except queues.Empty:
            return
        if what == "update":
            bar.update(value)
        elif what == "warn":
            if value not in said:
                said.add(value)
                bar.write(f"warning: {value}")
        else:
            bar.write(value)
