"""Building the settings dataclasses (model configs, TrainConfig) from flags and JSON, with one-line errors for
unknown names and wrong types instead of a TypeError deep inside a model."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, TypeVar

from makemore.errors import MakemoreError
from makemore.limits import is_whole

T = TypeVar("T")


def _fits(value: Any, hint: Any) -> tuple[bool, Any]:
    """(does it fit, the value converted): ints are accepted where floats are, lists where tuples are."""
    origin = typing.get_origin(hint) or hint
    if origin is typing.Union or str(origin) == "types.UnionType":
        for h in typing.get_args(hint):
            ok, v = _fits(value, h)
            if ok:
                return True, v
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return is_whole(value, -math.inf, math.inf), value  # (the settings' own checks give the range)
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if origin is tuple:
        return isinstance(value, list | tuple), tuple(value) if isinstance(value, list | tuple) else value
    if hint is str:
        return isinstance(value, str), value
    return True, value


def build(cls: type[T], values: dict[str, Any], what: str) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise MakemoreError(f"{what} has no setting {', '.join(unknown)} (has: {', '.join(sorted(known))})")
    checked = {}
    for key, value in values.items():
        ok, checked[key] = _fits(value, hints[key])
        if not ok:
            raise MakemoreError(f"{what}: {key} must be of type {getattr(hints[key], '__name__', hints[key])}, "
                                f"not {value!r}")
    return cls(**checked)
