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
