"""Files far larger than names: a 100 MB text trains in bounded memory; a 10 MB line never hangs."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from makemore.cli import main

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads peak memory from /proc")

PEAK = textwrap.dedent("""
    import sys
    import makemore.cli
    code = makemore.cli.main(sys.argv[1:])
    print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")), code)
""")


def peak_kib(path, out):
    """Peak memory of a whole `makemore train` run on the file."""
    r = subprocess.run([sys.executable, "-c", PEAK, "train", "--data", str(path), "--out", str(out), "--mode", "text",
                        "--model", "transformer", "--set", "block_size=32", "--set", "n_layer=1", "--set", "n_embd=32",
                        "--set", "n_head=2", "--steps", "20", "--eval-max", "20000", "--quiet", "--samples", "0"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    peak, code = map(int, r.stdout.split()[-2:])
    assert code == 0
    return peak * 1024


def write(path, size):
    para = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
            "must be in want of a wife.\n\n")
    with open(path, "w") as f:
        block = para * 1000
        while f.tell() < size:
            f.write(block)
    return path.stat().st_size


def test_a_100_mb_text_trains_in_less_than_twice_its_size(tmp_path):
    """The same run on a 1 MB and on a 100 MB file: the model, libraries and batches cost the same in both, so
    the difference in peak memory is what the data costs."""
    t = time.perf_counter()
    small = write(tmp_path / "small.txt", 1_000_000)
    big = write(tmp_path / "big.txt", 100_000_000)
    grown = peak_kib(tmp_path / "big.txt", tmp_path / "b") - peak_kib(tmp_path / "small.txt", tmp_path / "s")
    assert grown < 2 * (big - small), f"grew {grown / 1e6:.0f} MB more for {(big - small) / 1e6:.0f} MB more data"
    assert time.perf_counter() - t < 240


def test_a_10_mb_line_is_refused_in_lines_mode_and_read_as_text_otherwise(tmp_path, capsys):
    path = tmp_path / "line.txt"
    path.write_text("ab" * 5_000_000 + "\n")
    t = time.perf_counter()
    assert main(["train", "--data", str(path), "--mode", "lines", "--out", str(tmp_path / "a"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a line of 10,000,000 characters" in err and "--mode text" in err and err.count("\n") == 1
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "b"), "--steps", "5", "--set", "block_size=4",
                 "--eval-max", "1000", "--quiet", "--samples", "0"]) == 0  # auto mode: a text
    assert "text mode" in capsys.readouterr().err
    assert time.perf_counter() - t < 60
