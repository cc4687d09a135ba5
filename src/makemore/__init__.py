"""makemore: language models from a scalar autograd engine to a Transformer. Takes any text and makes more of it.

    import makemore as mm
    run = mm.train(data="names", preset="lecture2", out="runs/a", steps=2000)
    print(run.sample(10, temperature=0.8))

The command-line tool is `makemore` (see `makemore --help`); it calls the same functions (makemore.api).
"""

from importlib.metadata import PackageNotFoundError, version

from makemore.api import Run, counts_figure, diagnose, load, lr_find, prepare, train
from makemore.errors import MakemoreError

try:
    __version__ = version("makemore")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["MakemoreError", "Run", "__version__", "counts_figure", "diagnose", "load", "lr_find", "prepare", "train"]
