"""Faults done for real: kill -9 mid-run (and mid-checkpoint), two trainings into one folder, a loss that blows
up, an unwritable folder, a full disk (RLIMIT_FSIZE: writes fail with EFBIG, as on a full file system)."""

import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from makemore import checkpoint, runlock
from makemore.cli import main

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals, fork server and rlimits are POSIX")

FAST = ["--quiet", "--samples", "0"]
TINY = ["--set", "n_hidden=16", "--set", "n_embd=4", "--seed", "7"]
KILLS = 20


def one_line_error(capsys, code, *, after_start=False):
    """The error as one line; `after_start`: training had begun, so its start line may come first."""
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    if after_start and lines and lines[0].startswith("training "):
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("makemore: error:") and "Traceback" not in err, err
    return lines[0]


def saved_step(out: Path) -> int:
    try:
        return json.loads((out / checkpoint.META).read_text())["step"]
    except (OSError, ValueError):  # no checkpoint yet (the JSON file is replaced whole, never read half-written)
        return -1


def assert_lock_free(out: Path) -> None:
    with runlock.run_lock(out):  # (refused while another process holds it)
        pass


def leftovers(out: Path) -> list[str]:
    """Files of ours that no checkpoint names: what a kill during a checkpoint write leaves behind."""
    named = {f["name"] for f in json.loads((out / checkpoint.META).read_text())["files"].values()}
    return sorted(p.name for p in out.iterdir() if (p.suffix == ".tmp" or p.suffix == ".safetensors")
                  and p.name not in named)


@pytest.fixture(scope="module")
def forkserver():
    """Training processes forked from a server that has imported torch once: each is a whole process that dies
    by SIGKILL, without paying ~2 s of interpreter start-up twenty times."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["makemore.cli", "makemore.training", "makemore.checkpoint", "makemore.sampling",
                                "makemore.limits", "torch._dynamo"])  # torch.optim imports _dynamo at its first step
    return ctx


def start(ctx, argv):
    p = ctx.Process(target=main, args=(argv,), daemon=True)
    p.start()
    return p


def wait_for_progress(out: Path, p, after: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while saved_step(out) <= after:
        assert p.is_alive(), "training ended before it was killed"
        assert time.time() < deadline, "no checkpoint written"
        time.sleep(0.002)


def final_losses(stdout: str) -> str:
    return re.sub(r" \([0-9.]+ s\)", "", stdout.strip().splitlines()[0])


def test_kill_9_at_random_moments_then_resume_is_exact(tiny_names, tmp_path, capsys, forkserver):
    """One run killed with SIGKILL twenty times, resumed after each kill; a checkpoint every step, so many kills
    land in the middle of writing one. The end equals an uninterrupted run bit for bit."""
    steps = 200
    fresh = ["train", "--data", tiny_names, "--steps", str(steps), "--eval-interval", "1", *TINY, *FAST]
    rng = random.Random(13)
    out = tmp_path / "killed"
    during_write = 0
    for i in range(KILLS):
        before = saved_step(out)
        p = start(forkserver, [*fresh, "--out", str(out)] if i == 0 else
                  ["train", "--out", str(out), "--resume", *FAST])
        wait_for_progress(out, p, before)
        time.sleep(rng.uniform(0, 0.05))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        assert p.exitcode == -signal.SIGKILL
        during_write += bool(leftovers(out))
        ck = checkpoint.load(out)  # whole and verified (checksums, sizes) after every kill
        assert 0 < ck.step < steps
    assert during_write >= 1, "no kill landed during a checkpoint write"
    with capsys.disabled():  # the figure for benchmarks/RESULTS.md (pytest -s shows it)
        print(f"\n{KILLS} kills survived, {during_write} during a checkpoint write, step {saved_step(out)} reached")

    assert main(["train", "--out", str(out), "--resume", *FAST]) == 0
    resumed = capsys.readouterr().out
    assert main([*fresh, "--out", str(tmp_path / "whole")]) == 0
    whole = capsys.readouterr().out
    assert final_losses(resumed) == final_losses(whole)
    assert final_losses(whole).startswith(f"step {steps}: train loss")
    a, b = checkpoint.load(out), checkpoint.load(tmp_path / "whole")
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in b.weights) and a.best == b.best
    metrics = [(d / "metrics.csv").read_text() for d in (out, tmp_path / "whole")]
    assert metrics[0] == metrics[1]  # every step's loss, exactly, and no row twice
    assert leftovers(out) == []  # what the kills left was cleaned up by later saves
    assert_lock_free(out)


def test_second_training_into_the_same_folder_is_refused(tiny_names, tmp_path, capsys, forkserver):
    out = tmp_path / "run"
    p = start(forkserver, ["train", "--data", tiny_names, "--out", str(out), "--steps", "1000000",
                           "--eval-interval", "5", *TINY, *FAST])
    try:
        wait_for_progress(out, p, -1)
        holder = (out / runlock.LOCK).read_text().strip()
        assert holder == str(p.pid)
        for args in (["--resume"], ["--data", tiny_names, "--force"], ["--data", tiny_names]):
            msg = one_line_error(capsys, main(["train", "--out", str(out), *args, "--steps", "5", *FAST]))
            assert "in use" in msg and holder in msg
        assert p.is_alive()
    finally:
        os.kill(p.pid, signal.SIGKILL)  # the lock file stays behind, its holder dead
        p.join()
    assert (out / runlock.LOCK).exists()
    step = checkpoint.load(out).step
    assert main(["train", "--out", str(out), "--resume", "--steps", str(step + 5), *FAST]) == 0
    assert capsys.readouterr().out.startswith(f"step {step + 5}:")
    assert_lock_free(out)


def test_lock_is_refused_while_held_and_free_after(tmp_path):
    out = tmp_path / "run"
    with runlock.run_lock(out):
        assert (out / runlock.LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(runlock.MakemoreError, match=f"process {os.getpid()} is training"), runlock.run_lock(out):
            pass
    with runlock.run_lock(out):  # released, also for this process
        pass
    assert not out.exists()  # the lock made the folder and nothing was written into it


def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(tiny_names, tmp_path, capsys):
    out = tmp_path / "run"
    # plain SGD whose rate jumps to 1e30 at step 25: the loss is finite until the update lands, then inf/nan
    code = main(["train", "--data", tiny_names, "--out", str(out), "--steps", "100", "--eval-interval", "10",
                 "--optimizer", "sgd", "--lr", "0.1", "--schedule", "step", "--milestones", "25", "--gamma", "1e31",
                 *TINY, *FAST])
    msg = one_line_error(capsys, code, after_start=True)
    assert re.search(r"loss became (nan|inf|-inf) at step 2[6-9]", msg), msg
    assert "last good checkpoint" in msg
    ck = checkpoint.load(out)
    assert ck.step == 20 and all(torch.isfinite(v).all() for v in ck.weights.values())
    assert main(["sample", "--out", str(out), "-n", "2"]) == 0


def test_unwritable_out_is_refused_before_reading_data(tmp_path, capsys):
    missing = str(tmp_path / "no-such-data.txt")  # were it read first, the error would name it
    for out in ("/sys/makemore-test-run", str(tmp_path / "file" / "run")):
        (tmp_path / "file").write_text("x")
        msg = one_line_error(capsys, main(["train", "--data", missing, "--out", out, *FAST]))
        assert msg.startswith(f"makemore: error: cannot write to --out {out}:"), msg
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            msg = one_line_error(capsys, main(["train", "--data", missing, "--out", str(ro / "run"), *FAST]))
            assert "cannot write to --out" in msg and "ermission denied" in msg
        finally:
            ro.chmod(0o755)


def _full_disk(limit: int):
    def pre():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def run_limited(limit: int, *args):
    return subprocess.run([sys.executable, "-m", "makemore", *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=_full_disk(limit))


def test_full_disk_keeps_the_previous_checkpoint_whole(tiny_names, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", tiny_names, "--out", str(out), "--steps", "20", "--eval-interval", "10",
                 *TINY, *FAST]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name.endswith((".json", ".safetensors"))}
    # files of at most 2000 bytes: the lock and metrics rows fit, the next checkpoint's tensors do not
    r = run_limited(2000, "train", "--out", str(out), "--resume", "--steps", "40", *FAST)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 3 and lines[0].startswith("training mlp"), r.stderr  # it had started
    assert lines[1].startswith("resuming from step 20 to step 40; the learning-rate schedule is the one planned")
    assert lines[2] == f"makemore: error: cannot write to {out}: File too large; the last checkpoint in {out} was kept"
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name.endswith((".json", ".safetensors", ".tmp"))}
    assert after == before  # the previous checkpoint, byte for byte; no temporary file, no half a new one
    assert checkpoint.load(out).step == 20
    assert_lock_free(out)
    # not even the lock fits: known before any data is read or any training starts
    fresh = tmp_path / "fresh"
    r = run_limited(0, "train", "--data", tiny_names, "--out", str(fresh), *TINY, *FAST)
    assert r.returncode == 2 and r.stderr.strip() == f"makemore: error: cannot write to --out {fresh}: File too large"
    assert not fresh.exists()


def test_a_lock_file_is_not_a_checkpoint(tiny_names, tmp_path, capsys):
    """Only checkpoint.json commits a checkpoint: a lock or leftovers alone are not a run to protect or resume."""
    out = tmp_path / "run"
    out.mkdir()
    (out / runlock.LOCK).write_text("999999999\n")
    (out / ".weights-00000001-abcdef.safetensors.x1y2z3.tmp").write_bytes(b"half")
    assert "nothing to resume" in one_line_error(capsys, main(["train", "--out", str(out), "--resume", *FAST]))
    assert main(["train", "--data", tiny_names, "--out", str(out), "--steps", "3", *TINY, *FAST]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [runlock.LOCK]  # no leftovers
    ck = checkpoint.load(out)
    assert load_file(str(out / json.loads((out / checkpoint.META).read_text())["files"]["weights"]["name"]))
    assert ck.step == 3
