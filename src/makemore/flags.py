"""argparse types shared by every command (makemore, its micrograd, backprop and serve commands): a flag's bad value
is one line naming the flag and the range, never a traceback."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from makemore.limits import MAX_INT


def number_in(kind: type[int] | type[float], low: float, high: float, shown: str | None = None
              ) -> Callable[[str], int | float]:
    """A number of `kind` from low to high (never NaN); `shown` names the range in errors."""
    noun = "a whole number" if kind is int else "a number"
    shown = shown or (f"{low:,} and {high:,}" if kind is int else f"{low:g} and {high:g}")

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not low <= value <= high:  # (False for NaN)
            raise argparse.ArgumentTypeError(f"must be between {shown}, not {text}")
        return value
    return parse


seed = number_in(int, 0, MAX_INT, "0 and 2**63-1")  # what torch's generators take
port = number_in(int, 0, 65535)


def key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE, the value read as JSON when it is JSON (numbers, true, lists), else as a string."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.replace("-", "_"), parsed
