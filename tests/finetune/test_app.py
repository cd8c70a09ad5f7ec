"""The web app (`python -m finetune serve`) in a real browser: headless Chromium driven by Selenium uploads
a clip and reads the page; what it shows must be what `predict` says of the same file.

Needs the `app` extra (Gradio), Selenium and Debian's chromium + chromium-driver: `make test` installs all
of them (apt-get as root), so on CI these tests run; elsewhere they skip, naming what is missing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from finetune.__main__ import main

pytest.importorskip("gradio", reason="the web app's extra: pip install -e .[app]")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver (make test installs them as root)")]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`python -m finetune serve` (the shipped model: no --ckpt) on a free localhost port."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "finetune", "serve", "--port", str(port), "--device", "cpu"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                pytest.fail(f"serve exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("serve did not answer within 2 minutes")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def upload(browser, url: str, path: Path, timeout: float = 120.0) -> str:
    """Open the page, upload `path` and return the result's text once it is shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    field = WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR,
                                                                              "#audio input[type=file]")))
    field.send_keys(str(path))
    WebDriverWait(browser, timeout).until(lambda d: d.find_element(By.ID, "result").text.strip())
    return browser.find_element(By.ID, "result").text


def shown_probabilities(browser) -> dict[str, float]:
    from selenium.webdriver.common.by import By

    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#result td")]
    return {cells[i]: float(cells[i + 1]) for i in range(0, len(cells), 2)}


def test_the_page_shows_what_predict_says(server, browser, synthetic_corpus, tmp_path: Path) -> None:
    clip = next((synthetic_corpus(60, 6, 0) / "test").glob("*.wav"))
    text = upload(browser, server, clip)
    out = tmp_path / "predictions.csv"
    main(["predict", str(clip), "--out", str(out), "--device", "cpu"])  # the shipped model, as the server
    row = pd.read_csv(out).iloc[0]
    assert text.splitlines()[0].strip() == row["label_name"]
    shown = shown_probabilities(browser)
    assert shown == pytest.approx({c[2:]: row[c] for c in row.index if c.startswith("p_")}, abs=1e-4)
    assert abs(sum(shown.values()) - 1.0) < 1e-3


def test_a_long_recording_gets_its_timeline(server, browser, synthetic_corpus, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    clips = sorted((synthetic_corpus(60, 6, 0) / "test").glob("*.wav"))[:8]
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([sf.read(c, dtype="float32")[0] for c in clips]), 16000)
    text = upload(browser, server, long)
    windows = int(text.split(" window(s)")[0].split()[-1])
    assert windows > 1
    assert browser.find_element(By.ID, "timeline").is_displayed()
    link = browser.find_element(By.CSS_SELECTOR, "#timeline_csv a")
    assert link.get_attribute("href")


def test_a_corrupt_upload_gets_a_sentence_not_a_traceback(server, browser, tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage, not audio" * 10)
    text = upload(browser, server, bad)
    assert "Could not read broken.wav" in text
    assert "Traceback" not in text
