import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MAKEMORE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def names_path() -> str:
    """The lectures' names.txt, which lives beside the checkout and is never committed."""
    path = SHARED / "names.txt"
    assert path.is_file(), f"{path} is missing: the lecture figures are asserted on it (set MAKEMORE_SHARED_DATA)"
    return str(path)


@pytest.fixture(scope="session")
def names_corpus(names_path):
    from makemore.data import load_corpus

    return load_corpus(names_path)


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
    from makemore.train import TrainConfig, train

    out = tmp_path_factory.mktemp("serve") / "names"
    cfg = TrainConfig(steps=300, eval_interval=300, batch_size=64, lr=1e-2)
    train("mlp", {"n_embd": 4, "n_hidden": 32}, load_corpus("names"), cfg, out, progress=False)
    return str(out)
