"""micrograd: a scalar autograd engine and a tiny neural-net library (lecture 1).

    >>> from makemore.micrograd import Value
    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = (a * b + 1).tanh()
    >>> c.backward()

``engine.Value`` is the autograd scalar; ``nn`` has Neuron, Layer and MLP; ``draw``
draws graphs with graphviz; ``demo`` trains the lecture's two-moons classifier.
Nothing here needs torch or numpy except the demo's data (numpy) and its plot
(matplotlib), which are imported only when used.
"""

from makemore.micrograd.draw import draw_dot
from makemore.micrograd.engine import Value, gc_paused
from makemore.micrograd.nn import MLP, Layer, Module, Neuron

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP", "draw_dot", "gc_paused"]
