"""Elastic and multi-node DDP on one box (gloo): torchrun restarts a group that lost a rank to kill -9 and the run
continues from its last checkpoint; two launchers joined by a c10d rendezvous train as one launcher's two ranks."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_distributed import FLAGS, _env, _run, losses, makemore

from makemore.checkpoint import load_model

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers in /proc")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _ranks(launcher: int) -> dict[int, int]:
    """torchrun's workers, pid by rank: its child processes, each with RANK in its environment."""
    pids = {}
    for pid in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        pids[int(next(v for v in env if v.startswith(b"RANK="))[5:])] = int(pid)
    return pids


def elastic_run(out: Path, steps: int, kill_rank: int, when, timeout: float = 240):
    """`torchrun --max-restarts=1 ... train --resume auto` with `kill -9` of one rank once when() holds.
    Returns (exit code, stderr, the checkpoint's step when the rank was killed or None)."""
    cmd = [*TORCHRUN, "--standalone", "--max-restarts=1", "--nproc_per_node=2", "-m", "makemore", "train", *FLAGS,
           "--steps", str(steps), "--out", str(out), "--resume", "auto"]
    log = out.parent / f"{out.name}.log"
    with open(log, "w") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not when() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.poll() is None, f"the run ended before the kill:\n{log.read_text()}"
        meta = out / "checkpoint.json"
        at = json.loads(meta.read_text())["step"] if meta.exists() else None
        os.kill(_ranks(p.pid)[kill_rank], signal.SIGKILL)
        return p.wait(timeout=max(1.0, deadline - time.monotonic())), log.read_text(), at
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)


def test_a_killed_rank_0_is_restarted_and_the_run_continues_from_its_checkpoint(tmp_path):
    # Rank 0 holds the run lock and writes the checkpoints: killed, the kernel drops its lock, and the new rank 0
    # takes it and resumes from the last whole checkpoint.
    out, steps = tmp_path / "elastic", 200
    code, log, at = elastic_run(out, steps, kill_rank=0, when=(out / "checkpoint.json").exists)
    assert code == 0, log
    assert "failed (exitcode: -9)" in log and "restart 1 of at most 1" in log
    assert at is not None and 20 <= at < steps and at % 20 == 0
    resumed = int(log.split("resuming from step ")[1].split()[0].replace(",", ""))
    assert at <= resumed < steps  # the last checkpoint, no earlier one: at most one --eval-interval is redone
    # The same steps as a run never stopped (every step once in metrics.csv), and the checkpoint loads.
    makemore("train", *FLAGS, "--steps", str(steps), "--out", str(tmp_path / "straight"))
    a, b = losses(tmp_path / "straight"), losses(out)
    assert len(a) == len(b) == steps and max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    run = load_model(out, "last")
    assert run.ckpt.step == steps
    wa = load_model(tmp_path / "straight", "last").model.state_dict()
    assert all((wa[k] - v).abs().max() < 1e-5 for k, v in run.model.state_dict().items())


def test_a_rank_killed_before_the_first_checkpoint_starts_the_run_again(tmp_path):
    # The first attempt left metrics.csv but no checkpoint: its restart once refused the folder as another run's
    # ("already holds a run"), and every restart after it failed the same way.
    out, steps = tmp_path / "elastic", 200
    code, log, at = elastic_run(out, steps, kill_rank=1, when=(out / "metrics.csv").exists)
    assert at is None and code == 0, log
    assert "restart 1 of at most 1" in log and "resuming" not in log
    assert load_model(out, "last").ckpt.step == steps and len(losses(out)) == steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_launchers_of_one_rank_train_as_one_launcher_of_two(tmp_path):
    # Multi-node on one box: each launcher is a "node" of one rank, joined by a c10d rendezvous on 127.0.0.1.
    one, two = tmp_path / "one-launcher", tmp_path / "two-launchers"
    args = ["train", *FLAGS, "--steps", "40"]
    makemore(*args, "--out", str(one), ranks=2)
    rdzv = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{_free_port()}",
            f"--rdzv_id={os.getpid()}"]
    nodes = [subprocess.Popen([*TORCHRUN, *rdzv, f"--node_rank={r}", "-m", "makemore", *args,
                               "--out", str(two)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                              start_new_session=True) for r in (0, 1)]
    try:
        runs = [p.communicate(timeout=240) for p in nodes]
    finally:
        for p in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    assert [p.returncode for p in nodes] == [0, 0], runs
    assert "".join(out for out, _ in runs).count("step 40:") == 1  # one rank 0 in the two launchers
    a, b = losses(one), losses(two)
    assert len(a) == len(b) == 40 and max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    wa, wb = load_model(one, "last").model.state_dict(), load_model(two, "last").model.state_dict()
    assert all((wa[k] - wb[k]).abs().max() < 1e-5 for k in wa)


LATE_RANK_0_SCRIPT = """
import os, signal, sys, time
from makemore import training as train
from makemore.data import load_corpus

rank, attempt = os.environ["RANK"], int(os.environ["TORCHELASTIC_RESTART_COUNT"])
cfg = train.TrainConfig(steps=6, batch_size=8, optimizer="sgd", lr=0.1, eval_interval=100, seed=1)


def die(info):
    if attempt == 0 and rank == "0" and info.step == 3:
        os.kill(os.getpid(), signal.SIGKILL)


if attempt == 1 and rank == "0":
    time.sleep(3)  # the new rank 0 joins late: rank 1 looks for its address first
r = train.train("mlp", {"n_hidden": 16}, load_corpus(sys.argv[1]), cfg, sys.argv[2], progress=False, callbacks=[die])
os.write(1, f"rank {rank} attempt {attempt}: step {r.step}\\n".encode())
"""


def test_a_restarted_group_meets_afresh_not_at_the_dead_ranks_address(tmp_path, tiny_names):
    # torchrun's store outlives an attempt: rank 1 of the restarted group once found the killed rank 0's address
    # there ("Connection refused"), and the restart failed.
    script = tmp_path / "late.py"
    script.write_text(LATE_RANK_0_SCRIPT)
    cmd = [*TORCHRUN, "--standalone", "--max-restarts=1", "--nproc_per_node=2", str(script), tiny_names,
           str(tmp_path / "out")]
    r = _run(cmd, _env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(line for line in r.stdout.splitlines() if line.startswith("rank ")) == [
        "rank 0 attempt 1: step 6", "rank 1 attempt 1: step 6"]


def test_two_launchers_come_back_when_one_loses_its_rank(tmp_path):
    # Several nodes: each launcher counts its own restarts, so the group meets in a fresh store per attempt
    # (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, as the README says to set), not under a prefix of the count.
    out, steps = tmp_path / "elastic", 200
    rdzv = ["--max-restarts=1", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{_free_port()}", f"--rdzv_id={os.getpid()}"]
    args = ["-m", "makemore", "train", *FLAGS, "--steps", str(steps), "--out", str(out), "--resume", "auto"]
    env = {**_env(), "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    logs = [tmp_path / f"node{r}.log" for r in (0, 1)]
    nodes = []
    for r, log in enumerate(logs):
        with open(log, "w") as err:
            nodes.append(subprocess.Popen([*TORCHRUN, *rdzv, f"--node_rank={r}", *args], stdout=subprocess.DEVNULL,
                                          stderr=err, env=env, start_new_session=True))
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(p.poll() is None for p in nodes), "the run ended before the kill"
        os.kill(next(iter(_ranks(nodes[1].pid).values())), signal.SIGKILL)  # the second launcher's one rank
        codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in nodes]
    finally:
        for p in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    log = "".join(f.read_text() for f in logs)
    assert codes == [0, 0], log
    assert "failed (exitcode: -9)" in log and "resuming from step " in log
    assert load_model(out, "last").ckpt.step == steps and len(losses(out)) == steps


@pytest.mark.parametrize(("restarts", "nodes", "shared", "cannot"), [
    ("3", "2", "True", True),  # the case the warning is for
    ("3", "1", "True", False),  # one launcher: its group meets under a prefix of the attempt
    ("3", "2", "False", False),  # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1: a fresh store per attempt
    ("0", "2", "True", False),  # no restarts asked for
])
def test_a_multi_node_group_that_could_not_meet_after_a_restart_is_warned_of(monkeypatch, restarts, nodes, shared,
                                                                             cannot):
    from makemore.training import distributed

    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", restarts)
    monkeypatch.setenv("GROUP_WORLD_SIZE", nodes)
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", shared)
    assert distributed._restarts_cannot_meet() is cannot
