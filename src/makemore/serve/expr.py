"""The micrograd page's expressions: parsed without eval, bounded in size, drawn to SVG after backward.

The parser is micrograd's own (`parse_expression`, an AST walk that allows numbers, names, arithmetic and five
functions, and refuses everything else); this file adds the limits a server needs and the drawing.
"""

from __future__ import annotations

import math
from typing import Any

from makemore.errors import MakemoreError
from makemore.micrograd.cli import parse_expression
from makemore.micrograd.draw import draw_dot, trace

MAX_EXPR = 1000  # characters of expression
MAX_VALUES = 50  # named values
MAX_NODES = 200  # nodes in the graph: dot lays out a few hundred in well under a second


class Unavailable(Exception):
    """The server cannot draw (Graphviz's dot is missing or failed): not the user's fault."""


def build_graph(expr: str, values: dict[str, float], *, backward: bool = True, rankdir: str = "LR") -> dict[str, Any]:
    """The value of `expr`, every node's label/op/data/grad, and the SVG drawing of its graph."""
    if len(expr) > MAX_EXPR:
        raise MakemoreError(f"expression longer than {MAX_EXPR} characters")
    if len(values) > MAX_VALUES:
        raise MakemoreError(f"more than {MAX_VALUES} values")
    for name, v in values.items():
        if not name.isidentifier() or not math.isfinite(v):
            raise MakemoreError(f"bad value {name}={v}: names are identifiers, values finite numbers")
    try:
        root = parse_expression(expr, values)
    except MakemoreError as e:
        if isinstance(e.__context__, OverflowError):  # Python words it "(34, 'Numerical result out of range')"
            raise MakemoreError("the expression's value is too large for a float (over about 1.8e308)") from None
        # its messages speak of the CLI's --var flag; here values are typed as name=value
        raise MakemoreError(str(e).replace("--var ", "")) from None
    nodes, _ = trace(root)
    if len(nodes) > MAX_NODES:
        raise MakemoreError(f"the graph has {len(nodes)} nodes; at most {MAX_NODES} are drawn")
    if backward:
        root.backward()
    for v in nodes:
        if not (math.isfinite(v.data) and math.isfinite(v.grad)):
            raise MakemoreError(f"{v.label or v.op or 'a node'} is not a finite number (overflow?)")
    return {"value": root.data, "label": root.label, "svg": _svg(root, rankdir),
            "nodes": [{"label": v.label, "op": v.op, "data": v.data, "grad": v.grad} for v in nodes]}


def _svg(root: Any, rankdir: str) -> str:
    import graphviz

    try:
        data = draw_dot(root, format="svg", rankdir=rankdir).pipe(format="svg")
    except graphviz.ExecutableNotFound:
        raise Unavailable("Graphviz's 'dot' program is not installed on the server") from None
    except graphviz.CalledProcessError as e:
        raise Unavailable(f"dot failed: {(e.stderr or b'').decode(errors='replace').strip()[:200]}") from None
    text = data.decode("utf-8")
    return text[text.find("<svg"):]  # the element only: no XML prolog or DOCTYPE to embed in a page
