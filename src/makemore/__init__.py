"""makemore: character-level language models, from a scalar autograd engine to a Transformer.

Takes any text and makes more of it. The command-line tool is `makemore` (see `makemore --help`).
"""

__version__ = "0.1.0"
