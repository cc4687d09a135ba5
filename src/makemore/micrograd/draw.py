"""Drawings of computation graphs, as in the lecture, via the ``graphviz`` package.

Each Value is a record ``{ label | data | grad }``; the op that produced it is a small
node in between its operands and itself.  A number operand (the 2 in ``x * 2``) is
drawn as a ``const`` record.  ``graphviz`` is imported only when drawing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from makemore.atomic import atomic_write
from makemore.errors import MakemoreError
from makemore.micrograd.engine import Value

if TYPE_CHECKING:
    import graphviz

__all__ = ["trace", "draw_dot", "render"]


def trace(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """All nodes reachable from ``root`` and the edges (operand, result) between them.

    Iterative, so deep graphs are fine; the order is deterministic (depth first from
    the root), which keeps drawings of the same graph identical.
    """
    nodes: list[Value] = []
    edges: list[tuple[Value, Value]] = []
    seen = {id(root)}
    stack = [root]
    while stack:
        v = stack.pop()
        nodes.append(v)
        for child in v.children:
            edges.append((child, v))
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return nodes, edges


def _escape(text: str) -> str:
    """Escape the characters that structure a graphviz record label."""
    for ch in "\\{}|<>":
        text = text.replace(ch, "\\" + ch)
    return text


def draw_dot(root: Value, format: str = "svg", rankdir: str = "LR") -> graphviz.Digraph:
    """The graph of ``root`` as a ``graphviz.Digraph`` (render it with ``.pipe()``/``.render()``).

    ``rankdir``: 'LR' (left to right, the default) or 'TB' (top to bottom).
    """
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"rankdir must be 'LR' or 'TB', not {rankdir!r}")
    try:
        import graphviz
    except ImportError as e:  # pragma: no cover - graphviz is a dependency
        raise MakemoreError("drawing needs the 'graphviz' Python package: pip install graphviz") from e

    nodes, edges = trace(root)
    # Names from traversal order rather than id(): stable across runs.
    names = {id(v): f"v{i}" for i, v in enumerate(nodes)}
    dot = graphviz.Digraph(format=format, graph_attr={"rankdir": rankdir})
    for v in nodes:
        name = names[id(v)]
        fields = [_escape(v.label)] if v.label else []
        fields += [f"data {v.data:.4f}", f"grad {v.grad:.4f}"]
        dot.node(name=name, label="{ " + " | ".join(fields) + " }", shape="record")
        if v.op:
            dot.node(name=name + "op", label=_escape(v.op))
            dot.edge(name + "op", name)
            c = v.constant
            if c is not None:
                dot.node(name=name + "c", label=f"{{ const | {c:.4f} }}", shape="record", style="dashed")
                dot.edge(name + "c", name + "op")
    for child, parent in edges:
        dot.edge(names[id(child)], names[id(parent)] + "op")
    return dot


def render(root: Value, path: str | os.PathLike[str], format: str | None = None, rankdir: str = "LR") -> str:
    """Draw the graph of ``root`` into the file ``path``; returns the path.

    ``format`` defaults to the file extension (svg, png, pdf, ...).  The file is
    written to a temporary name and then renamed, so it is never left half-written.
    Raises MakemoreError (one line) if Graphviz's ``dot`` program is missing or fails.
    """
    path = os.fspath(path)
    fmt = (format or os.path.splitext(path)[1].lstrip(".") or "svg").lower()
    try:
        import graphviz
    except ImportError as e:  # pragma: no cover - graphviz is a dependency
        raise MakemoreError("drawing needs the 'graphviz' Python package: pip install graphviz") from e
    if fmt not in graphviz.FORMATS:
        raise MakemoreError(f"unknown drawing format {fmt!r}: use e.g. svg, png or pdf")
    dot = draw_dot(root, format=fmt, rankdir=rankdir)
    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound as e:
        raise MakemoreError(
            "Graphviz's 'dot' program was not found on PATH: install Graphviz (e.g. apt-get install graphviz)"
        ) from e
    except graphviz.CalledProcessError as e:
        detail = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise MakemoreError(f"dot failed: {detail[0] if detail else e}") from e
    try:
        atomic_write(path, data)
    except OSError as e:
        raise MakemoreError(f"cannot write {path}: {e.strerror or e}") from None
    return path
