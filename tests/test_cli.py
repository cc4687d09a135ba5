import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from makemore.cli import main

FAST = ["--quiet", "--samples", "0"]


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "makemore", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_is_fast_and_imports_no_torch():
    t = time.perf_counter()
    r = run("--help")
    assert r.returncode == 0 and "train" in r.stdout
    assert time.perf_counter() - t < 1.5
    code = "import sys, makemore.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    assert out == "False"
    for cmd in ("train", "sample", "eval", "plot"):
        assert run(cmd, "--help").returncode == 0


def test_counts_figure_through_the_cli(names_path, tmp_path, capsys):
    out = str(tmp_path / "bc")
    assert main(["train", "--model", "bigram-counts", "--data", names_path, "--train-split", "all",
                 "--out", out, *FAST]) == 0
    capsys.readouterr()
    assert main(["eval", "--out", out, "--split", "all", "--json"]) == 0
    losses = json.loads(capsys.readouterr().out)
    assert list(losses) == ["all", "bpc"] and round(losses["all"], 4) == 2.4546
    assert losses["bpc"]["all"] == pytest.approx(losses["all"] / math.log(2), rel=1e-9)  # a char model's bits
    assert main(["eval", "--out", out]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["train", "val", "test"]


def test_train_sample_eval_and_plots(tiny_names, tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--data", tiny_names, "--out", out, "--steps", "60", "--eval-interval", "30",
            "--set", "n_hidden=32", "--quiet", "--samples", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("step 60: train loss") and len(printed) == 5
    assert printed[1].startswith("7,680 tokens trained at ") and "s (start-up " in printed[1]
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    assert main(["sample", "--out", out, "-n", "8", "--seed", "7"]) == 0
    first = capsys.readouterr().out
    assert main(["sample", "--out", out, "-n", "8", "--seed", "7"]) == 0
    assert capsys.readouterr().out == first and len(first.splitlines()) == 8
    assert main(["sample", "--out", out, "-n", "5", "--prompt", "em", "--top-k", "3"]) == 0
    assert all(s.startswith("em") for s in capsys.readouterr().out.splitlines())
    assert main(["sample", "--out", out, "-n", "5", "--unique", "--temperature", "1.5"]) == 0
    names = set(open(tiny_names).read().split())
    assert not names & set(capsys.readouterr().out.split())
    assert main(["plot", "embedding", "--out", out]) == 0
    assert main(["plot", "loss", "--out", out, "--file", str(tmp_path / "l.png")]) == 0
    assert (tmp_path / "l.png").stat().st_size > 10_000
    assert main(["plot", "counts", "--data", tiny_names, "--file", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 10_000


def bad(capsys, *args):
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's own errors (a flag's type) exit from inside the parser
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("makemore: error:") and "Traceback" not in err
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_names, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert "empty" in bad(capsys, "train", "--data", str(empty), "--out", str(tmp_path / "a"))
    assert "UTF-8" in bad(capsys, "train", "--data", str(binary), "--out", str(tmp_path / "a"))
    assert "directory" in bad(capsys, "train", "--data", str(tmp_path), "--out", str(tmp_path / "a"))
    assert "no checkpoint" in bad(capsys, "sample", "--out", str(tmp_path / "nothing"))
    assert "unknown model" in bad(capsys, "train", "--model", "gpt9", "--out", str(tmp_path / "a"))
    out = str(tmp_path / "run")
    assert main(["train", "--data", tiny_names, "--out", out, "--steps", "5", *FAST]) == 0
    capsys.readouterr()
    assert "vocabulary" in bad(capsys, "sample", "--out", out, "--prompt", "Zoë")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    assert "already holds" in bad(capsys, "train", "--data", tiny_names, "--out", out, "--steps", "5")
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    ckpt = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    weights = tmp_path / "run" / ckpt["files"]["weights"]["name"]
    weights.write_bytes(weights.read_bytes()[:-10])
    assert "checksum" in bad(capsys, "sample", "--out", out, "--last")
    assert "checksum" in bad(capsys, "eval", "--out", out, "--last")


@pytest.mark.parametrize("flags, said", [
    (["--steps", str(2**64)], "--steps must be between 0 and 2**63-1"),
    (["--warmup", str(10**20), "--schedule", "cosine"], "--warmup must be between 0 and 2**63-1"),
    (["--eval-interval", str(2**63)], "--eval-interval must be between 1 and 2**63-1"),
    (["--seed", str(10**20)], "--seed must be between 0 and 2**63-1"),
    (["--seed", "-1"], "--seed must be between 0 and 2**63-1"),
    (["--threads", str(10**11)], "--threads must be between 0 (automatic) and 1024"),
    (["--model", "bigram-counts", "--smoothing", "-5"], "smoothing must be a finite number >= 0"),
    (["--model", "bigram-counts", "--smoothing", "nan"], "smoothing must be a finite number >= 0"),
])
def test_numbers_a_checkpoint_could_not_hold_are_refused_before_training(tmp_path, tiny_names, capsys, flags,
                                                                         said):
    # (each was once accepted, trained and saved, and the run then refused to load as corrupt)
    assert said in bad(capsys, "train", "--data", tiny_names, "--out", str(tmp_path / "a"), *flags)
    assert not (tmp_path / "a" / "checkpoint.json").exists()


def test_an_edited_checkpoint_with_wrong_types_is_one_line(tmp_path, tiny_names, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", tiny_names, "--out", out, "--steps", "5", *FAST]) == 0
    meta_file = tmp_path / "run" / "checkpoint.json"
    for key, value, said in (("betas", ["a", "b"], "betas must be two numbers"),
                             ("milestones", ["a"], "--milestones must be steps")):
        meta = json.loads(meta_file.read_text())
        meta["train"][key] = value
        meta_file.write_text(json.dumps(meta))
        capsys.readouterr()
        assert said in bad(capsys, "train", "--out", out, "--resume", "--steps", "10")
        meta["train"]["betas"], meta["train"]["milestones"] = [0.9, 0.99], []
        meta_file.write_text(json.dumps(meta))


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "interrupted at step"),
                                                (signal.SIGTERM, 143, "stopped by SIGTERM at step")])
def test_signal_saves_then_exits(tiny_names, tmp_path, signum, code, said):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "makemore", "train", "--data", tiny_names, "--out", str(out),
                          "--steps", "10000000", "--eval-interval", "200", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "checkpoint.json").exists():
        time.sleep(0.05)  # the first evaluation (step 200) writes the first checkpoint: training is under way
    time.sleep(0.1)
    p.send_signal(signum)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    last = err.strip().splitlines()[-1]  # after the "training ..." line, one line says what happened
    assert last.startswith(f"makemore: {said}") and "checkpoint saved" in last and "Traceback" not in err, err
    step = json.loads((out / "checkpoint.json").read_text())["step"]
    assert step >= 200
    r = run("train", "--out", str(out), "--resume", "--steps", str(step + 10), *FAST)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"step {step + 10}:")


def test_text_mode_end_to_end(tmp_path, capsys):
    text = tmp_path / "play.txt"
    text.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me.\n\n" * 30)
    out = str(tmp_path / "run")
    assert main(["train", "--data", str(text), "--out", out, "--steps", "30", "--set", "block_size=8", *FAST]) == 0
    capsys.readouterr()
    assert main(["eval", "--out", out, "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["train", "val", "bpc"]
    assert main(["sample", "--out", out, "-n", "2", "--prompt", "ROMEO:", "--max-len", "40"]) == 0
    samples = capsys.readouterr().out.split("\n---\n")
    assert len(samples) == 2 and all(s.startswith("ROMEO:") and len(s.rstrip("\n")) == 46 for s in samples)
    assert "no 'test' split" in bad(capsys, "eval", "--out", out, "--split", "test")
    assert "unique samples need a model trained on lines" in bad(capsys, "sample", "--out", out, "--unique")
    assert "-n: must be between 1 and" in bad(capsys, "sample", "--out", out, "-n", "0")


def test_more_bad_input(tmp_path, tiny_names, capsys):
    one = tmp_path / "one.txt"
    one.write_text("emma\n")
    a = str(tmp_path / "a")
    assert "no training examples" in bad(capsys, "train", "--data", str(one), "--out", a)
    (tmp_path / "file").write_text("x")
    assert "is a file" in bad(capsys, "train", "--data", tiny_names, "--out", str(tmp_path / "file"))
    assert "must be of type int" in bad(capsys, "train", "--data", tiny_names, "--out", a, "--set", "n_hidden=abc")
    assert "block_size must be >= 1" in bad(capsys, "train", "--data", tiny_names, "--out", a, "--set", "block_size=0")
    assert "init must be" in bad(capsys, "train", "--data", tiny_names, "--out", a, "--set", "init=foo")
    assert "unknown device" in bad(capsys, "train", "--data", tiny_names, "--out", a, "--device", "mps")
    assert "learning rate (--lr) must be a finite number > 0, not nan" in bad(
        capsys, "train", "--data", tiny_names, "--out", a, "--lr", "nan")
    assert "--batch-size must be between 0 and" in bad(capsys, "train", "--data", tiny_names, "--out", a,
                                                       "--batch-size", "-1")
    assert "--batch-size must be between 0 and" in bad(capsys, "train", "--data", tiny_names, "--out", a,
                                                       "--batch-size", str(10**12))
    assert "steps must be > 0" in bad(capsys, "train", "--data", tiny_names, "--out", a, "--steps", "0")
    assert "counted" in bad(capsys, "lr-find", "--model", "bigram-counts", "--data", tiny_names)
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_sampling_edge_cases(tmp_path, tiny_names, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", tiny_names, "--out", out, "--steps", "5", *FAST]) == 0
    capsys.readouterr()
    assert "-n: must be between 1 and" in bad(capsys, "sample", "--out", out, "-n", "0")  # (it printed nothing)
    assert "--max-tokens/--max-len: expected a whole number, got '1e11'" in bad(
        capsys, "sample", "--out", out, "--max-tokens", "1e11")
    assert "temperature" in bad(capsys, "sample", "--out", out, "--temperature", "nan")
    assert main(["sample", "--out", out, "-n", "3", "--max-len", "0"]) == 0
    assert capsys.readouterr().out == "\n\n\n"


def test_runs_are_protected_and_resume_is_strict(tmp_path, tiny_names, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", tiny_names, "--out", str(out), "--steps", "20", "--eval-interval", "10",
                 *FAST]) == 0
    capsys.readouterr()
    assert "cannot change when resuming" in bad(capsys, "train", "--out", str(out), "--resume", "--weight-decay", "0.1")
    assert "drop the preset" in bad(capsys, "train", "--out", str(out), "--resume", "--preset", "lecture2")
    other = tmp_path / "other.txt"
    other.write_text("zed\nzoe\n" * 20)
    assert "was trained on different data" in bad(capsys, "train", "--out", str(out), "--resume", "--data", str(other))
    # the run's own data may be named again: resuming says what it does
    assert main(["train", "--out", str(out), "--resume", "--data", tiny_names, "--steps", "30", *FAST]) == 0
    assert capsys.readouterr().err.splitlines()[1].startswith("resuming from step 20 to step 30")
    # --force replaces everything, the old best weights included
    assert main(["train", "--model", "bigram-counts", "--data", tiny_names, "--out", str(out), "--force",
                 *FAST]) == 0
    assert main(["sample", "--out", str(out), "-n", "2"]) == 0
    assert not list(out.glob("best-*"))
    capsys.readouterr()
    # a folder with someone's metrics.csv is not overwritten without --force
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.csv").write_text("precious\n")
    assert "already holds a run" in bad(capsys, "train", "--data", tiny_names, "--out", str(mine))
    assert (mine / "metrics.csv").read_text() == "precious\n"


def test_eval_refuses_a_changed_file_and_reports_empty_splits(tmp_path, capsys):
    data = tmp_path / "five.txt"
    data.write_text("anna\nbob\ncarl\ndora\nemil\n")
    out = str(tmp_path / "run")
    assert main(["train", "--data", str(data), "--out", out, "--steps", "5", *FAST]) == 0
    capsys.readouterr()
    assert main(["eval", "--out", out, "--json"]) == 0
    losses = json.loads(capsys.readouterr().out)
    assert losses["val"] is None and losses["train"] > 0  # 5 items: 4 train, 0 val, 1 test
    data.write_text("bob\nanna\ncarl\ndora\nemil\n")
    assert "changed since" in bad(capsys, "eval", "--out", out)
    assert main(["eval", "--out", out, "--data", str(data)]) == 0


def test_resume_after_a_torn_metrics_file(tmp_path, tiny_names, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", tiny_names, "--out", str(out), "--steps", "20", "--eval-interval", "10",
                 *FAST]) == 0
    metrics = out / "metrics.csv"
    metrics.write_text(metrics.read_text() + "21,0.01,2.3")  # a row cut short by kill -9
    assert main(["train", "--out", str(out), "--resume", "--steps", "30", *FAST]) == 0
    steps = [int(line.split(",")[0]) for line in metrics.read_text().splitlines()[1:] if line.split(",")[2]]
    assert steps == list(range(30))


def test_checkpoint_names_outside_the_folder_are_refused(tmp_path, tiny_names, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", tiny_names, "--out", str(out), "--steps", "5", *FAST]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    meta = json.loads((out / "checkpoint.json").read_text())
    meta["files"]["extra"] = {"name": "../victim.txt", "sha256": "0"}
    (out / "checkpoint.json").write_text(json.dumps(meta))
    assert main(["train", "--data", tiny_names, "--out", str(out), "--steps", "5", "--force", *FAST]) == 0
    assert victim.read_text() == "keep me"
    meta["files"]["weights"]["name"] = "../victim.txt"
    (out / "checkpoint.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert "unexpected file name" in bad(capsys, "sample", "--out", str(out), "--last")


def test_a_streamed_prompt_with_unknown_characters_prints_nothing(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 40)
    out = str(tmp_path / "run")
    assert main(["train", "--data", str(text), "--mode", "text", "--model", "bigram", "--steps", "5", "--out", out,
                 "--quiet", "--samples", "0"]) == 0
    capsys.readouterr()
    assert main(["sample", "--out", out, "--prompt", "the QQ", "--max-tokens", "20"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "vocabulary" in captured.err
    assert main(["sample", "--out", out, "--prompt", "the ", "--max-tokens", "20"]) == 0
    assert capsys.readouterr().out.startswith("the ")


@pytest.mark.parametrize("args, said", [
    (["lr-find", "--num", "0"], "--num: must be between 2 and"),
    (["lr-find", "--max", "400"], "--max: must be between -30 and 30"),
    (["lr-find", "--min", "nan"], "--min: must be between -30 and 30"),
    (["lr-find", "--min", "1", "--max", "0"], "the lowest exponent (1) must be below the highest (0)"),
    (["diagnose", "--batch-size", "0"], "--batch-size: must be between 2 and"),
    (["diagnose", "--probe-steps", "-3"], "--probe-steps: must be between 0 and"),
    (["train", "--preset", "lecture4", "--batch-size", "1", "--steps", "3"], "BatchNorm needs at least 2 rows"),
    (["train", "--model", "mlp-deep", "--batch-size", "1", "--steps", "3"], "BatchNorm needs at least 2 rows"),
    (["train", "--set", "vocab_size=5"], "vocab_size is the data's number of characters"),
])
def test_tool_flags_out_of_range_are_one_line(tmp_path, tiny_names, capsys, args, said):
    assert said in bad(capsys, *args, "--data", tiny_names, "--out", str(tmp_path / "a"))


def test_plot_loss_on_a_damaged_metrics_file(tmp_path, tiny_names, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", tiny_names, "--out", str(out), "--steps", "5", *FAST]) == 0
    capsys.readouterr()
    metrics = out / "metrics.csv"
    rows = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*rows, "6,0.0"]))  # a row torn by a kill: skipped
    assert main(["plot", "loss", "--out", str(out), "--file", str(tmp_path / "a.png")]) == 0
    metrics.write_text("\n".join([rows[0], rows[1].replace(rows[1].split(",")[2], "abc"), *rows[2:]]) + "\n")
    assert "line 2: not a row" in bad(capsys, "plot", "loss", "--out", str(out))
    metrics.write_text(rows[0] + "\n")
    assert "no training losses" in bad(capsys, "plot", "loss", "--out", str(out))


def test_a_reader_that_goes_away_stops_sampling_quietly(tmp_path, tiny_names):
    out = str(tmp_path / "run")
    assert main(["train", "--data", tiny_names, "--out", out, "--steps", "5", *FAST]) == 0
    p = subprocess.Popen([sys.executable, "-m", "makemore", "sample", "--out", out, "-n", "15000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()  # `| head -1`
    p.stdout.close()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 141 and b"error" not in err and b"Traceback" not in err


def test_resume_refuses_going_back_and_ignores_adamws_momentum(tmp_path, tiny_names, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", tiny_names, "--out", out, "--steps", "10", *FAST]) == 0
    capsys.readouterr()
    assert "already at step 10, past --steps 5" in bad(capsys, "train", "--out", out, "--resume", "--steps", "5")
    # momentum is SGD's: with AdamW it changes nothing, so it does not block a resume
    assert main(["train", "--out", out, "--resume", "--steps", "12", "--momentum", "0.5", *FAST]) == 0


def test_texts_sampled_after_training_are_shown_apart(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat.\n" * 60)
    assert main(["train", "--data", str(text), "--mode", "text", "--model", "bigram", "--steps", "5",
                 "--out", str(tmp_path / "run"), "--quiet", "--samples", "3"]) == 0
    assert capsys.readouterr().out.count("\n---\n") == 2
