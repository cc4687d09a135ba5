"""``makemore micrograd demo`` and ``makemore micrograd graph``.

Only the standard library at import time: the engine, numpy, matplotlib and graphviz are
imported inside the commands so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import ast
import math
import operator
from typing import TYPE_CHECKING, Any

from makemore import flags
from makemore.errors import MakemoreError

if TYPE_CHECKING:
    from makemore.micrograd.engine import Value

__all__ = ["register", "parse_expression", "LECTURE_NEURON"]

# The lecture's neuron, with its intermediate nodes named as in the lecture's drawing
# (b is chosen so that the output is tanh(0.8814) = 0.7071).
LECTURE_NEURON = (
    "x1 = 2.0; x2 = 0.0; w1 = -3.0; w2 = 1.0; b = 6.8813735870195432; "
    "x1w1 = x1*w1; x2w2 = x2*w2; x1w1x2w2 = x1w1 + x2w2; n = x1w1x2w2 + b; o = tanh(n)"
)

FUNCTIONS = ("exp", "log", "tanh", "relu", "sigmoid")


def register(subparsers: Any) -> None:
    """Add the ``micrograd`` command (subcommands ``demo`` and ``graph``) to ``subparsers``."""
    p = subparsers.add_parser(
        "micrograd",
        help="the scalar autograd engine of lecture 1: train the moons demo, draw graphs",
        description="A scalar autograd engine and a tiny neural-net library (lecture 1).",
    )
    sub = p.add_subparsers(dest="micrograd_command", metavar="COMMAND", required=True)

    d = sub.add_parser(
        "demo",
        help="train the lecture's MLP on the two-moons data",
        description="Train MLP(2, [16, 16, 1]) on 100 two-moons points with an SVM loss, as in the lecture;"
        " prints the loss and accuracy of every step.",
    )
    d.add_argument("--steps", type=flags.number_in(int, 1, 10_000_000), default=100,
                   help="SGD steps (default 100)")
    d.add_argument("--plot", metavar="PATH", help="save the decision boundary there (png, svg, pdf, ...)")
    d.set_defaults(func=cmd_demo)

    g = sub.add_parser(
        "graph",
        help="draw the computation graph of an expression",
        description="Draw the graph of EXPR after backpropagating from it.  EXPR uses numbers, names, "
        "+ - * / ** (by a number), and the functions " + ", ".join(FUNCTIONS) + ".  Statements may be "
        "separated by ';' and 'name = ...' names a node, e.g. \"n = x*w + b; o = tanh(n)\".  Without "
        "EXPR: the lecture's neuron.",
        epilog='example: makemore micrograd graph "tanh(x1*w1 + x2*w2 + b)" --var x1=2 --var x2=0 '
        "--var w1=-3 --var w2=1 --var b=6.8813735870195432 --out neuron.svg",
    )
    g.add_argument("expr", nargs="?", metavar="EXPR", help="the expression (default: the lecture's neuron)")
    g.add_argument(
        "--var",
        action="append",
        default=[],
        type=_assignment,
        metavar="NAME=VALUE",
        help="the value of a name (repeatable); overrides a 'name = number' in EXPR",
    )
    g.add_argument("--out", default="graph.svg", help="output file (default graph.svg)")
    g.add_argument("--format", help="svg, png, pdf, ... (default: from --out's extension)")
    g.add_argument("--rankdir", choices=["LR", "TB"], default="LR", help="layout direction (default LR)")
    g.add_argument("--no-backward", action="store_true", help="draw without computing gradients")
    g.set_defaults(func=cmd_graph)


def _assignment(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{name}: expected a finite number, got {value!r}")
    return name, number


def cmd_demo(args: argparse.Namespace) -> int:
    from makemore.micrograd.demo import run_demo

    run_demo(steps=args.steps, plot_path=args.plot, log=lambda line: print(line, flush=True))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from makemore.micrograd.draw import render

    source = args.expr if args.expr is not None else LECTURE_NEURON
    root = parse_expression(source, dict(args.var))
    if not args.no_backward:
        root.backward()
    path = render(root, args.out, format=args.format, rankdir=args.rankdir)
    name = root.label or "result"
    print(f"{name} = {root.data!r}; graph written to {path}")
    return 0


def parse_expression(source: str, variables: dict[str, float] | None = None) -> Value:
    """Build the graph of ``source`` and return its last value (never uses eval).

    ``source`` is one or more statements separated by ';' or newlines: expressions and
    ``name = expression`` assignments.  Allowed: numbers, names, ``+ - * /``, ``**`` by a
    number, unary ``-``/``+``, parentheses and calls of exp, log, tanh, relu, sigmoid.
    A name is a leaf Value labelled with the name; its value comes from ``variables`` or
    from a ``name = number`` assignment (``variables`` wins).  Assigning anything else
    labels the resulting node.  Raises MakemoreError for anything else.
    """
    return _Builder(dict(variables or {})).run(source)


class _Builder:
    def __init__(self, variables: dict[str, float]) -> None:
        self.variables = variables
        self.names: dict[str, Value | float] = {}

    def run(self, source: str) -> Value:
        from makemore.micrograd.engine import Value

        try:
            tree = ast.parse(source, mode="exec")
        except SyntaxError as e:
            raise MakemoreError(f"invalid expression: {e.msg} (column {e.offset})") from None
        except (ValueError, RecursionError, MemoryError) as e:
            raise MakemoreError(f"invalid expression: {e}") from None
        if not tree.body:
            raise MakemoreError("empty expression")
        try:
            result = self.statements(tree.body)
        except RecursionError:
            raise MakemoreError("expression nested too deeply") from None
        unused = sorted(set(self.variables) - set(self.names))
        if unused:
            raise MakemoreError(f"--var {unused[0]}: no such name in the expression")
        if not isinstance(result, Value):
            # A plain number: still draw it, as a single leaf.
            result = Value(result)
        return result

    def statements(self, body: list[ast.stmt]) -> Value | float:
        from makemore.micrograd.engine import Value

        result: Value | float = 0.0
        for stmt in body:
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None
            if isinstance(target, ast.Name):
                name = target.id
                value = self.eval(stmt.value)
                if isinstance(value, Value):
                    if not value.label:
                        value.label = name
                else:  # a number becomes a leaf; a --var of the same name overrides it
                    value = Value(self.variables.get(name, value), label=name)
                self.names[name] = value
                result = value
            elif isinstance(stmt, ast.Expr):
                result = self.eval(stmt.value)
            else:
                raise MakemoreError(f"unsupported statement: {_snippet(stmt)!r}")
        return result

    def eval(self, node: ast.AST) -> Value | float:
        from makemore.micrograd.engine import Value

        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return float(node.value)  # floats only: no huge-integer arithmetic
            raise MakemoreError(f"unsupported constant {node.value!r}: only numbers")
        if isinstance(node, ast.Name):
            name = node.id
            if name not in self.names:
                if name not in self.variables:
                    raise MakemoreError(f"unknown name {name!r}: give it a value with --var {name}=VALUE")
                self.names[name] = Value(self.variables[name], label=name)
            return self.names[name]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.eval(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left = self.eval(node.left)
            right = self.eval(node.right)
            if isinstance(node.op, ast.Pow) and isinstance(right, Value):
                raise MakemoreError(f"the exponent must be a number: {_snippet(node)!r}")
            try:
                result = _BINOPS[type(node.op)](left, right)
            except ZeroDivisionError:
                raise MakemoreError(f"division by zero in {_snippet(node)!r}") from None
            except (OverflowError, ValueError) as e:
                raise MakemoreError(f"cannot compute {_snippet(node)!r}: {e}") from None
            if isinstance(result, complex):
                raise MakemoreError(f"complex result in {_snippet(node)!r}")
            return result
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FUNCTIONS
            and len(node.args) == 1
            and not node.keywords
        ):
            arg = self.eval(node.args[0])
            if not isinstance(arg, Value):
                arg = Value(arg)
            try:
                return getattr(arg, node.func.id)()
            except (OverflowError, ValueError) as e:
                raise MakemoreError(f"cannot compute {_snippet(node)!r}: {e}") from None
        if isinstance(node, ast.Call):
            raise MakemoreError(
                f"unsupported call {_snippet(node)!r}: use one of {', '.join(FUNCTIONS)} with one argument"
            )
        raise MakemoreError(f"unsupported syntax: {_snippet(node)!r}")


def _snippet(node: Any) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
