"""What a run records as it goes: metrics.csv (every step's loss, every evaluation), TensorBoard when installed,
and the progress bar."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from makemore.atomic import atomic_write
from makemore.errors import MakemoreError

METRICS = "metrics.csv"


def progress_bar(enabled: bool, initial: int, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5, smoothing=0.05)


def _tensorboard(folder: Path):
    """A TensorBoard writer into folder/tb when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder / "tb"))


COLUMNS = ["step", "lr", "loss", "val_loss", "bpc", "val_bpc"]


class MetricsLog:
    """metrics.csv: one row per step (step, lr, loss, , bpc) and val rows (step, , , val_loss, , val_bpc); losses
    in nats per token and in bits per character. On resume the rows past the checkpoint's step are dropped, so
    the file reads as one uninterrupted run. Also to TensorBoard, if installed (train loss every TB_EVERY steps,
    every val loss).

    A step's bits per character take the training split's mean characters per token (`chars_per_token`, 1 for
    the char tokenizer; batches.chars_per_target), left blank when not given; an evaluation's are its own
    (evaluate's Loss.bpc)."""

    TB_EVERY = 100

    def __init__(self, path: Path, start: int, chars_per_token: float | None = None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.bits_per_nat = 1 / math.log(2) / chars_per_token if chars_per_token else None
        rows: list[list[str]] = []
        if start > 0 and path.exists():
            with open(path, newline="") as f:  # a run killed mid-write can leave a torn last row: skip it
                rows = [r for r in csv.reader(f) if len(r) in (4, 6) and r[0].isdigit()
                        and int(r[0]) < start + (r[3] != "")]
        # The kept rows replace the file in one rename (a kill while it is rewritten loses no history); the run
        # then appends to it.
        atomic_write(path, lambda f: f.write(_csv_text([COLUMNS, *rows]).encode()))
        self.file = open(path, "a", newline="")  # noqa: SIM115  (kept open for the whole run)
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.pending: list[tuple] = []  # written in one go at each evaluation: a row per step is a hot path
        self.tb = _tensorboard(path.parent)

    def row(self, step: int, lr: float, loss: float) -> None:
        self.pending.append((step, lr, loss))
        if self.tb is not None and step % self.TB_EVERY == 0:
            self.tb.add_scalar("loss/train", loss, step)
            self.tb.add_scalar("lr", lr, step)

    def _drain(self) -> None:
        k = self.bits_per_nat
        self.writer.writerows([s, f"{lr:.6g}", f"{loss:.6f}", "", f"{loss * k:.6f}" if k else "", ""]
                              for s, lr, loss in self.pending)
        self.pending.clear()

    def val(self, step: int, val: float | None) -> None:
        self._drain()
        if val is not None:
            bpc = getattr(val, "bpc", None)  # (evaluate's Loss knows its own)
            self.writer.writerow([step, "", "", f"{val:.6f}", "", "" if bpc is None else f"{bpc:.6f}"])
            if self.tb is not None:
                self.tb.add_scalar("loss/val", val, step)
        self.file.flush()

    def close(self) -> None:
        self._drain()
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def read_metrics(path: str | Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, loss) per step and (step, val_loss) per evaluation, from a metrics.csv. A torn last row (a run
    killed while writing it) is skipped; any other row that does not read is a MakemoreError naming its line."""
    steps, vals = [], []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise MakemoreError(f"{path} is not a metrics file ({e})") from None
    for i, r in enumerate(rows):
        try:
            if r["loss"]:
                steps.append((int(r["step"]), float(r["loss"])))
            if r["val_loss"]:
                vals.append((int(r["step"]), float(r["val_loss"])))
        except (KeyError, TypeError, ValueError):
            if i < len(rows) - 1:
                raise MakemoreError(f"{path}, line {i + 2}: not a row of step, lr, loss, val_loss numbers") from None
    return steps, vals
