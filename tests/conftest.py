import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MAKEMORE_SHARED_DATA", ROOT.parent / "shared" / "data"))
# CI sets MAKEMORE_REQUIRE_ALL=1 (any value but empty or 0): there a missing optional part is a failure, so no test
# silently stops running. This is its one reading; every optional part goes through missing() below.
REQUIRE_ALL = os.environ.get("MAKEMORE_REQUIRE_ALL", "") not in ("", "0")

# The slowest tests (pytest --durations, 2 cores): the README's `python -m pytest` leaves them out (addopts
# -m "not slow" in pyproject.toml); CI runs everything (.ci/run: -m "slow or not slow"), and so does a run that
# names its files or tests (`python -m pytest tests/test_faults.py`). A file, or file::test.
SLOW = (
    "test_browser.py",  # a real chromium and a `makemore serve` subprocess
    "test_distributed.py",  # two torchrun ranks per test: 6-24 s each
    "test_faults.py",  # kill -9 at random moments, a full disk
    "test_fuzz.py",  # ~950 hostile inputs
    "test_huge_inputs.py",  # a 100 MB text
    "test_bigram.py::test_neural_bigram_converges_to_counts",
    "test_cli.py::test_signal_saves_then_exits",
    "test_cli.py::test_a_reader_that_goes_away_stops_sampling_quietly",
    "test_micrograd_demo.py::test_demo_reproduces_reference_trajectory",
    "test_notebook.py",  # a Jupyter kernel running examples/lectures-1-3.ipynb
    "test_elastic.py",  # torchrun groups killed and restarted
    "test_tune.py::test_two_workers_share_one_study",
    "test_tune.py::test_with_two_workers_the_two_best_settings_are_trained_again_side_by_side",
    "test_tune.py::test_a_killed_workers_trial_fails_and_the_study_goes_on",
    "test_store.py::test_a_truncated_or_foreign_token_file_is_one_line",
)


@pytest.hookimpl(tryfirst=True)  # before -m reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return  # the tests were named on the command line: run them, slow or not
    for item in items:
        test = item.nodeid.split("/")[-1]
        if any(test == s or test.startswith((s + "::", s + "[")) for s in SLOW):
            item.add_marker(pytest.mark.slow)


def missing(reason: str) -> NoReturn:
    """Skip a test whose optional part is absent, saying how to turn it on; fail instead under REQUIRE_ALL."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (MAKEMORE_REQUIRE_ALL is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need(module: str, install: str) -> ModuleType:
    """Import an optional package (in a test or at a test file's top), or go through missing()."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        absent = e.name or module
    missing(f"needs {absent}: {install}")  # outside the except: no "during handling" traceback under REQUIRE_ALL


def shared_file(name: str, what: str) -> str:
    """A file of ../shared/data (or MAKEMORE_SHARED_DATA): beside the checkout, never committed."""
    path = SHARED / name
    if not path.is_file():
        missing(f"needs {what}, not found at {path}: put it there, or set MAKEMORE_SHARED_DATA to the folder "
                "that holds it")
    return str(path)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module of tiny models (handing tiny operations between threads costs more than
    it saves), and the thread count it had afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def names_path() -> str:
    return shared_file("names.txt", "the lectures' names.txt")


@pytest.fixture(scope="session")
def names_corpus(names_path):
    from makemore.data import load_corpus

    return load_corpus(names_path)


@pytest.fixture
def dot() -> None:
    """Graphviz's `dot` program, an optional part (only `makemore micrograd graph` needs it)."""
    if shutil.which("dot") is None:
        missing("needs Graphviz's `dot` on PATH: apt-get install graphviz (or brew install graphviz)")


@pytest.fixture
def tiny_names(tmp_path) -> str:
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper",
                               "evelyn", "abigail", "emily", "ella", "elizabeth", "camila", "luna"] * 4) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory) -> str:
    """A tiny mlp trained for a few seconds on the bundled names: enough for the playground's tests."""
    from makemore.data import load_corpus
    from makemore.training import TrainConfig, train

    out = tmp_path_factory.mktemp("serve") / "names"
    cfg = TrainConfig(steps=300, eval_interval=300, batch_size=64, lr=1e-2)
    train("mlp", {"n_embd": 4, "n_hidden": 32}, load_corpus("names"), cfg, out, progress=False)
    return str(out)


@pytest.fixture(scope="session")
def shakespeare_path() -> str:
    return shared_file("tinyshakespeare.txt", "tinyshakespeare.txt (lecture 7's text)")
