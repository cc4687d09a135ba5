"""The playground in a real browser: Debian's headless chromium driven by Selenium through Debian's chromedriver.

Skipped when chromium or chromedriver is not on PATH, unless MAKEMORE_REQUIRE_ALL is set (as in CI), where that is
a failure. The browser resolves no host name (--host-resolver-rules): the pages must work offline.
Screenshots go to $MAKEMORE_SCREENSHOTS when set (benchmarks/figures/ holds the committed ones), else to tmp.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import missing, need

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,860", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]  # offline: no host but this one is reached


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        missing("needs Debian's chromium and chromedriver on PATH: apt-get install chromium chromium-driver")
    webdriver = need("selenium.webdriver", "pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never try to download a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    yield driver
    driver.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(serve_run, tmp_path_factory):
    """`makemore serve` itself, in a subprocess, as a user would start it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "makemore", "serve", "--out", serve_run, "--port", str(port)],
                                stdout=f, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/info", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"makemore serve did not start: {log.read_text()}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("MAKEMORE_SCREENSHOTS")
    return Path(folder) if folder else tmp_path_factory.mktemp("screenshots")


def screenshot(driver, path: Path) -> None:
    """A PNG of the page, reduced to 128 colours: a few tens of KB instead of a few hundred."""
    from io import BytesIO

    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image.quantize(colors=128).save(path, optimize=True)


def wait(driver, condition, timeout=30):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page replaces its lists as results arrive: an element found a moment before can be gone when a
    # condition reads it. That is "not yet", so the condition is tried again.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def test_make_more_page(browser, server, shots):
    from selenium.webdriver.common.by import By

    d = browser
    d.get(server + "/")
    wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert "mlp model, lines mode, 27 tokens" in d.find_element(By.ID, "model-info").text
    assert len(d.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 27

    d.find_element(By.ID, "generate-button").click()
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#samples li")) == 20)
    assert "20 samples, seed" in d.find_element(By.ID, "status").text

    # Why this letter: type a prefix, then click the bar of the likeliest next letter.
    d.find_element(By.ID, "prefix").send_keys("ka")
    wait(d, lambda d: d.find_element(By.ID, "why-prefix").text == "ka"
         and d.find_element(By.ID, "context").text == ".ka")
    bars = d.find_elements(By.CSS_SELECTOR, "#bars .bar:not(.end)")
    best = max(bars, key=lambda b: float(b.get_attribute("aria-label").split()[-1].rstrip("%")))
    letter = best.get_attribute("data-char")
    best.click()
    wait(d, lambda d: d.find_element(By.ID, "prefix").get_attribute("value") == "ka" + letter
         and d.find_element(By.ID, "context").text == "ka" + letter)
    assert d.find_element(By.ID, "why-prefix").text == "ka" + letter

    # Samples now start with the prefix built by clicking; "only new ones" keeps them out of the training data.
    d.find_element(By.ID, "unique").click()
    d.find_element(By.ID, "generate-button").click()
    wait(d, lambda d: all(li.text.startswith("ka" + letter) for li in d.find_elements(By.CSS_SELECTOR, "#samples li"))
         and "ms" in d.find_element(By.ID, "status").text)
    shown = [li.text for li in d.find_elements(By.CSS_SELECTOR, "#samples li")]
    from makemore.data import load_corpus

    assert shown and not set(shown) & set(load_corpus("names").items("all"))
    d.find_element(By.ID, "copy").click()
    wait(d, lambda d: d.find_element(By.ID, "status").text.startswith("copied"))
    screenshot(d, shots / "serve_playground.png")


def test_api_docs_page_offline(browser, server):
    """/docs draws every operation of the API with the network blocked: Swagger UI comes from this server."""
    from selenium.webdriver.common.by import By

    d = browser
    d.get(server + "/docs")
    paths = wait(d, lambda d: [e.get_attribute("data-path") for e in
                               d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")] or None)
    assert sorted(paths) == ["/api/graph", "/api/info", "/api/next", "/api/sample", "/api/stream"]
    assert "makemore playground" in d.find_element(By.CSS_SELECTOR, ".swagger-ui .title").text
    loaded = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert server + "/openapi.json" in loaded and all(url.startswith(server + "/") for url in loaded), loaded


def test_micrograd_page(browser, server, shots, dot):
    from selenium.webdriver.common.by import By

    d = browser
    d.get(server + "/micrograd")
    wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    svg = d.find_element(By.CSS_SELECTOR, "#graph svg")
    assert "grad 2.0000" in svg.text and "data 4.0000" in svg.text  # a*b + c at a=2, b=-3, c=10
    assert d.find_element(By.ID, "result").text.startswith("result = 4")

    expr = d.find_element(By.ID, "expr")
    expr.clear()
    expr.send_keys("y = x*x + 1")
    values = d.find_element(By.ID, "values")
    values.clear()
    values.send_keys("x=3")
    d.find_element(By.ID, "draw").click()
    wait(d, lambda d: d.find_element(By.ID, "result").text.startswith("y = 10"))
    assert "grad 6.0000" in d.find_element(By.CSS_SELECTOR, "#graph svg").text  # dy/dx = 2x
    assert len(d.find_elements(By.CSS_SELECTOR, "#nodes tbody tr")) == 3  # x, x*x and y (the 1 is a constant)

    d.find_element(By.CSS_SELECTOR, "button.example[data-values='']").click()  # the lecture's neuron
    wait(d, lambda d: d.find_element(By.ID, "result").text.startswith("o = 0.707107"))
    screenshot(d, shots / "serve_micrograd.png")

    expr.clear()
    expr.send_keys("a.__class__")
    d.find_element(By.ID, "draw").click()
    error = wait(d, lambda d: d.find_element(By.ID, "error") if d.find_element(By.ID, "error").is_displayed()
                 else None)
    assert "unsupported syntax" in error.text


def test_text_model_streams(browser, tmp_path, shots):
    """A text model's page streams a continuation into one block instead of listing items."""
    from selenium.webdriver.common.by import By

    from makemore.data import load_corpus
    from makemore.training import TrainConfig, train

    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat.\n\nshe sells sea shells by the sea shore.\n\n" * 20)
    train("bigram-counts", {}, load_corpus(str(path)), TrainConfig(steps=1), tmp_path / "run", progress=False)
    import threading

    import torch
    import uvicorn

    from makemore.serve.app import create_app
    from makemore.serve.engine import Engine

    threads = torch.get_num_threads()
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(Engine(tmp_path / "run", threads=1)), port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.05)
        d = browser
        d.get(f"http://127.0.0.1:{port}/")
        wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert not d.find_element(By.ID, "samples").is_displayed()
        d.find_element(By.ID, "prefix").send_keys("the")
        d.find_element(By.ID, "generate-button").click()
        wait(d, lambda d: d.find_element(By.ID, "status").text == "503 characters")
        assert d.find_element(By.ID, "continuation").text.startswith("the")
    finally:
        srv.should_exit = True
        thread.join(10)
        torch.set_num_threads(threads)
