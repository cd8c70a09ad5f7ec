"""Load test of `python -m finetune serve` on localhost (not collected by pytest: run it by hand).

    .venv/bin/python tests/load/serve_load.py [--clients 20] [--seconds 120] [--port 7861]

Starts the server (the shipped model) in a child process, then `--clients` threads upload for `--seconds`:
mostly 5-30 s recordings of w2v2.synth's voice, with every fifth upload a corrupt file and every
seventh one over the server's --max-minutes. Prints throughput, p50/p95 latency of the good uploads,
the server's peak memory (its /proc status), and whether every good upload got an emotion and every bad
one its sentence. Traffic goes to 127.0.0.1 only and stops by itself."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

from w2v2.synth.corpus import make_speaker, synthesize_clip


def make_uploads(folder: Path) -> dict[str, list[Path]]:
    rng = np.random.default_rng(0)
    good = []
    for k, seconds in enumerate((5, 12, 20, 30)):
        parts = [synthesize_clip(k % 6, make_speaker(k, 0), rng, seconds=5.0)[0] for _ in range(seconds // 5)]
        good.append(folder / f"talk{seconds}.wav")
        sf.write(good[-1], np.concatenate(parts), 16000)
    corrupt = folder / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    long = folder / "long.wav"  # 3 minutes: over --max-minutes 2
    sf.write(long, np.zeros(16000 * 180, dtype=np.float32), 16000, subtype="PCM_16")
    return {"good": good, "corrupt": [corrupt], "long": [long]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--port", type=int, default=7861)
    p.add_argument("--concurrency", type=int, default=2, help="the server's --concurrency")
    p.add_argument("--threads", type=int, default=1, help="the server's --threads")
    args = p.parse_args()
    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp(prefix="w2v2-load-"))
    uploads = make_uploads(tmp)
    command = [sys.executable, "-m", "finetune", "serve", "--port", str(args.port), "--max-minutes", "2",
               "--threads", str(args.threads), "--concurrency", str(args.concurrency)]
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - open for the server's whole life
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{args.port}/"
    for _ in range(120):
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(1)
    results: list[tuple[str, float, str]] = []
    peak = [rss_mb(server.pid)]
    stop = time.monotonic() + args.seconds
    lock = threading.Lock()

    def client(k: int) -> None:
        c = Client(url, verbose=False)
        i = k
        while time.monotonic() < stop:
            kind = "corrupt" if i % 5 == 4 else "long" if i % 7 == 6 else "good"
            path = uploads[kind][i % len(uploads[kind])]
            tick = time.monotonic()
            try:
                message = c.predict(handle_file(str(path)), api_name="/run")[0]
            except Exception as e:  # noqa: BLE001 - a failed request is what this test counts
                message = f"FAILED: {type(e).__name__}: {e}"
            with lock:
                results.append((kind, time.monotonic() - tick, str(message)))
            i += args.clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak.append(rss_mb(server.pid))
        time.sleep(0.5)
    alive = server.poll() is None
    server.terminate()
    good = [r for r in results if r[0] == "good"]
    lat = sorted(r[1] for r in good)
    answered = sum(r[2].startswith("## ") for r in good)
    bad_ok = sum(("Could not read" in r[2]) for r in results if r[0] == "corrupt")
    long_ok = sum(("minutes long" in r[2]) for r in results if r[0] == "long")
    failed = [r for r in results if r[2].startswith("FAILED")]
    print(f"server --concurrency {args.concurrency} --threads {args.threads}; {args.clients} clients, "
          f"{args.seconds:.0f} s: {len(results)} requests, {len(good)} good uploads "
          f"({len(good) / args.seconds:.2f}/s), p50 {statistics.median(lat):.1f} s, "
          f"p95 {lat[int(0.95 * (len(lat) - 1))]:.1f} s")
    print(f"good answered with an emotion or no speech: {answered}/{len(good)}; corrupt with a sentence: "
          f"{bad_ok}/{sum(r[0] == 'corrupt' for r in results)}; over the limit refused: "
          f"{long_ok}/{sum(r[0] == 'long' for r in results)}; failed requests: {len(failed)}")
    print(f"server memory: {peak[0]:.0f} MB at start, peak {max(peak):.0f} MB; server still up at the end: {alive}")
    for r in failed[:3]:
        print("  ", r[2][:200])


if __name__ == "__main__":
    main()
