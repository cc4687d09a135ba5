"""Every names preset resolves to a model that builds, and its training settings are valid."""

import pytest
import torch

from makemore import models, presets
from makemore.training import TrainConfig

NAMES_PRESETS = ["bigram", "best", "mlp-deep", "wavenet", "rnn", "gru", "lstm", "bow", "transformer", "names-best",
                 "names-lstm"]


@pytest.mark.parametrize("preset", NAMES_PRESETS)
def test_names_preset_builds(preset):
    name, config, settings = presets.resolve(None, preset)
    TrainConfig.from_dict(settings)
    model = models.build(name, models.make_config(name, **{**config, "vocab_size": 27}))
    x = torch.zeros(2, model.block_size, dtype=torch.long)
    out = model(x)
    assert out.shape[-1] == 27


def test_names_best_is_a_regularised_transformer():
    name, config, settings = presets.resolve(None, "names-best")
    assert name == "transformer" and config["dropout"] > 0 and settings["weight_decay"] > 0
    cfg = TrainConfig.from_dict(settings)
    assert cfg.schedule == "cosine" and cfg.steps > 0
