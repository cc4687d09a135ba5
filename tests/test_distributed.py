"""DistributedDataParallel on CPU: two gloo ranks started by torchrun, against one process."""

import os
import subprocess
import sys

import pytest

from makemore import training as train
from makemore.checkpoint import load_model

pytestmark = pytest.mark.skipif(os.name != "posix", reason="torchrun's standalone rendezvous")

FLAGS = ["--data", "names", "--model", "mlp", "--set", "n_hidden=64", "--batch-size", "32", "--optimizer", "sgd",
         "--schedule", "constant", "--lr", "0.2", "--eval-interval", "20", "--quiet", "--samples", "0"]


def makemore(*args, ranks=1):
    cmd = [sys.executable, "-m", "makemore", *args]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               "-m", "makemore", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**env, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    return r


def losses(out):
    return [loss for _, loss in train.read_metrics(out / train.METRICS)[0]]


def test_two_ranks_follow_the_single_process_trajectory(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    makemore("train", *FLAGS, "--steps", "40", "--out", str(one))
    r = makemore("train", *FLAGS, "--steps", "40", "--out", str(two), ranks=2)
    assert r.stdout.count("step 40:") == 1  # rank 0 alone reports
    a, b = losses(one), losses(two)
    assert len(a) == len(b) == 40
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    assert a[-1] < a[0] - 0.3  # it learned
    # The checkpoint written under DDP loads in a single process, with the same weights.
    wa, wb = load_model(one, "last").model.state_dict(), load_model(two, "last").model.state_dict()
    assert all((wa[k] - wb[k]).abs().max() < 1e-5 for k in wa)
    # And resumes under DDP to the same end as an uninterrupted run.
    makemore("train", "--out", str(two), "--resume", "--steps", "60", "--quiet", "--samples", "0", ranks=2)
    makemore("train", "--out", str(one), "--resume", "--steps", "60", "--quiet", "--samples", "0")
    a, b = losses(one), losses(two)
    assert len(a) == len(b) == 60 and max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5


def test_batch_must_split_between_ranks(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "makemore",
           "train", *FLAGS, "--batch-size", "33", "--steps", "5", "--out", str(tmp_path / "x")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode != 0 and "must be a multiple of the 2 processes" in r.stderr
