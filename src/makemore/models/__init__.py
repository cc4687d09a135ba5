"""The model zoo. Every module in this package registers its models when imported; all are imported here, so a
new model file needs no edit anywhere else."""

import importlib
import pkgutil

from makemore.models.registry import MODELS, LanguageModel, ModelConfig, build, get, make_config

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["MODELS", "LanguageModel", "ModelConfig", "build", "get", "make_config"]
