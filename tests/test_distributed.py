"""DistributedDataParallel on CPU: two gloo ranks started by torchrun, against one process."""

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
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
    r = _run(cmd, _env())
    assert r.returncode == 0, r.stderr
    return r


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # SIGABRT prints a rank's Python stacks


def _two_ranks_of(script, *args, timeout=120):
    """A Python script of ours run as 2 torchrun ranks (not asserted to succeed)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           *map(str, args)]
    return _run(cmd, _env(), timeout)


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



RANKS_SCRIPT = """
import atexit, gc, os, sys
from torch.nn.parallel import DistributedDataParallel
from makemore import training as train
from makemore.data import load_corpus
from makemore.errors import MakemoreError

rank, error = os.environ["RANK"], sys.argv[2]
wrappers = lambda: sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())  # garbage included
say = lambda line: os.write(1, f"rank {rank}{line}\\n".encode())  # one write: the ranks share the pipe
atexit.register(lambda: say(f" at exit: {wrappers()} DDP"))
cfg = train.TrainConfig(steps=6, batch_size=8, optimizer="sgd", lr=0.1, eval_interval=3, seed=1)


def fail(info):
    if info.step == 3 and error != "none":
        raise (MakemoreError if error == "caught" else RuntimeError)("failed at step 3")


try:
    train.train("mlp", {"n_hidden": 16}, load_corpus(sys.argv[1]), cfg, sys.argv[3], progress=False,
                callbacks=[fail])
    say(f" after the run: {wrappers()} DDP")
except MakemoreError as e:
    say(f": {e}")
"""


# none: a run that ends well; caught: one stopped by an error its caller handles; uncaught: an error that ends
# the interpreter, its traceback kept in sys.last_value
@pytest.mark.parametrize("error", ["none", "caught", "uncaught"])
def test_no_rank_takes_its_ddp_wrapper_into_the_interpreters_teardown(tmp_path, tiny_names, error):
    # DDP sits in reference cycles. Left to the interpreter's teardown, it was freed there with the process
    # group's pending work, whose gloo threads then reached for a Python already gone: the rank aborted now and
    # again ("terminate called without an active exception"), and torchrun killed rank 0 before it reported.
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    r = _two_ranks_of(script, tiny_names, error, tmp_path / "out")
    assert (r.returncode == 0) == (error != "uncaught"), r.stderr
    lines = sorted(line for line in r.stdout.splitlines() if line.startswith("rank "))
    at_exit = ["rank 0 at exit: 0 DDP", "rank 1 at exit: 0 DDP"]
    if error == "none":  # freed as the run ends
        assert lines == ["rank 0 after the run: 0 DDP", at_exit[0], "rank 1 after the run: 0 DDP", at_exit[1]]
    elif error == "caught":  # the error's traceback held the loop past the run: the wrapper went all the same
        assert lines == [at_exit[0], "rank 0: failed at step 3", at_exit[1], "rank 1: failed at step 3"]
    else:
        assert lines == at_exit and r.stderr.count("RuntimeError: failed at step 3") == 2


def test_the_cli_in_a_process_that_is_no_rank_returns(monkeypatch, capsys):
    # WORLD_SIZE alone (a cluster job's environment, a notebook on such a node) does not end the process:
    # only one that has been a rank of a group is ended without the interpreter's teardown.
    from makemore.cli import console, main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(sys, "argv", ["makemore", "models"])
    monkeypatch.setattr("makemore.cli._leave", lambda code: pytest.fail(f"the process was ended ({code})"))
    assert main(["models"]) == 0 and console() == 0
    assert capsys.readouterr().out.count("transformer") >= 2


OWN_GROUP_SCRIPT = """
import os, sys
import torch.distributed as dist
from makemore import training as train
from makemore.data import load_corpus

cfg = train.TrainConfig(steps=6, batch_size=8, optimizer="sgd", lr=0.1, eval_interval=3, seed=1)
dist.init_process_group("gloo")
for k in range(2):  # (torch cannot join a group again after leaving one: both runs need the caller's)
    r = train.train("mlp", {"n_hidden": 16}, load_corpus(sys.argv[1]), cfg, f"{sys.argv[2]}/{k}", progress=False)
    os.write(1, f"rank {os.environ['RANK']} run {k}: step {r.step}, group {dist.is_initialized()}\\n".encode())
dist.destroy_process_group()
"""


def test_a_group_the_caller_made_is_used_and_left_to_the_caller(tmp_path, tiny_names):
    # train() once left every group it met, the caller's too: a second run in the same processes then hung.
    script = tmp_path / "own.py"
    script.write_text(OWN_GROUP_SCRIPT)
    r = _two_ranks_of(script, tiny_names, tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(line for line in r.stdout.splitlines() if line.startswith("rank ")) == [
        f"rank {rank} run {k}: step 6, group True" for rank in (0, 1) for k in (0, 1)]
