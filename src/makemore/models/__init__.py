"""The model zoo. Importing a model's module registers it under its name."""

from makemore.models import bigram, mlp, mlp_manual  # noqa: F401  (registration side effects)
from makemore.models.registry import MODELS, LanguageModel, ModelConfig, build, get, make_config

__all__ = ["MODELS", "LanguageModel", "ModelConfig", "build", "get", "make_config"]
