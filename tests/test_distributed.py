"""DistributedDataParallel on CPU: two gloo ranks started by torchrun, against one process."""

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

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
    env = {**env, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # SIGABRT prints a rank's Python stacks
    for attempt in (1, 2):
        r = _run(cmd, env)
        finished = "step " in r.stdout  # rank 0 printed the run's last line: its work is saved
        torn_down = r.returncode is None or (r.returncode != 0 and "SIGABRT" in r.stderr
                                             and "terminate called without an active exception" in r.stderr)
        if r.returncode == 0 or attempt == 2 or not (finished and torn_down):
            break
        # Twice in CI (never in 20 runs here) two ranks hung after the run's last line was printed, its work
        # saved: the rare hang of a process group's teardown (pytorch/pytorch#75097); once a rank aborted
        # instead, at interpreter exit with no Python frame, after the same last line ("terminate called without
        # an active exception": a gloo thread still alive at exit). Shown, then run again.
        warnings.warn(f"torchrun's teardown failed after the run finished; every rank's stacks:\n"
                      f"{r.stderr[-6000:]}", stacklevel=2)
    assert r.returncode == 0, r.stderr
    return r


def _run(cmd, env, timeout=120):
    """The run's output; on a hang each rank gets SIGABRT (its stacks go to stderr), then all are killed and
    returncode is None."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):  # torchrun's children: the ranks
            for pid in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGABRT)
        time.sleep(3)
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return subprocess.CompletedProcess(cmd, None, out, err)


def losses(out):
    return [loss for _, loss in train.read_metrics(out / train.METRICS)[0]]


def test_two_ranks_follow_the_single_process_trajectory(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    makemore("train", *FLAGS, "--steps", "40", "--out", str(one))
    r = makemore("train", *FLAGS, "--steps", "40", "--out", str(two), ranks=2)
    assert r.stdout.count("step 40:") == 1  # rank 0 alone reports
    assert (two / "loss.png").stat().st_size > 1000  # and draws the loss curve (rank 1 leaves the folder alone)
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


def test_a_batch_larger_than_the_data_is_the_whole_split_shared(tmp_path):
    # Each rank once sliced rows [rank * 2000, (rank + 1) * 2000) of a split of ~60 rows: rank 1 had none.
    data = tmp_path / "few.txt"
    data.write_text("anna\nbob\ncarla\ndave\nevelyn\nfrank\ngina\nhal\nivy\njon\n")
    flags = [*FLAGS, "--data", str(data), "--batch-size", "4000", "--steps", "30"]
    one, two = tmp_path / "one", tmp_path / "two"
    makemore("train", *flags, "--out", str(one))
    makemore("train", *flags, "--out", str(two), ranks=2)
    a, b = losses(one), losses(two)
    assert len(a) == len(b) == 30 and all(math.isfinite(x) for x in a + b)
    # the whole split on one process; its rows shared by two (an odd row out, if any, is left out)
    assert abs(a[0] - b[0]) < 0.05
