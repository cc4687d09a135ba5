"""Named recipes: a model, its settings and its training settings. Plain data; flags on the command line win.

A model's own name is also a preset: its defaults when no --preset is given.
"""

from __future__ import annotations

from typing import Any

LECTURE_SGD = {"optimizer": "sgd", "lr": 0.1, "schedule": "step", "milestones": [100_000], "gamma": 0.1,
               "batch_size": 32, "steps": 200_000, "eval_interval": 10_000}

SEQ_ADAMW = {"optimizer": "adamw", "lr": 3e-3, "schedule": "cosine", "warmup": 200, "min_lr": 3e-4, "batch_size": 64,
             "steps": 5000, "eval_interval": 500, "weight_decay": 0.01, "grad_clip": 1.0}

PRESETS: dict[str, dict[str, Any]] = {
    "bigram-counts": {"model": "bigram-counts", "train": {"steps": 0}},
    # Full-batch gradient descent at the lecture's rate of 50.
    "bigram": {"model": "bigram", "train": {"optimizer": "sgd", "lr": 50.0, "batch_size": 0, "steps": 300,
                                            "eval_interval": 50}},
    # The default job: a small MLP that trains in about half a minute on a laptop CPU.
    "mlp": {"model": "mlp", "config": {"block_size": 4, "n_embd": 16, "n_hidden": 200},
            "train": {"optimizer": "adamw", "lr": 3e-3, "schedule": "cosine", "warmup": 100, "min_lr": 3e-4,
                      "batch_size": 128, "steps": 8000, "eval_interval": 1000, "weight_decay": 0.01}},
    "mlp-deep": {"model": "mlp-deep", "train": {**LECTURE_SGD, "steps": 20_000, "milestones": [15_000],
                                                 "eval_interval": 2000}},
    # Lecture makemore 2, end to end: raw randn init from the seeded generator, SGD 0.1 then 0.01.
    "lecture2": {"model": "mlp", "config": {"block_size": 3, "n_embd": 10, "n_hidden": 200, "init": "raw"},
                 "train": LECTURE_SGD},
    # The 2-D embedding run whose scatter plot shows the characters' clusters.
    "lecture2-2d": {"model": "mlp", "config": {"block_size": 3, "n_embd": 2, "n_hidden": 100, "init": "raw"},
                    "train": LECTURE_SGD},
    # Lecture makemore 3: the fixed initialisation, then BatchNorm (momentum 0.001, calibrated after training).
    "lecture3-init": {"model": "mlp", "config": {"block_size": 3, "n_embd": 10, "n_hidden": 200, "init": "scaled"},
                      "train": LECTURE_SGD},
    "lecture3-bn": {"model": "mlp", "config": {"block_size": 3, "n_embd": 10, "n_hidden": 200, "init": "scaled",
                                               "batchnorm": True, "bn_momentum": 0.001},
                    "train": {**LECTURE_SGD, "calibrate_bn": True}},
    # Lecture makemore 4: the BatchNorm MLP (b1 kept, Bessel-corrected variance) trained on hand-derived gradients
    # only, BatchNorm calibrated on the training split at the end, as the lecture evaluates it.
    "lecture4": {"model": "mlp-manual", "config": {"block_size": 3, "n_embd": 10, "n_hidden": 200},
                 "train": {**LECTURE_SGD, "calibrate_bn": True}},
    "lecture3-deep": {"model": "mlp-deep", "config": {"n_embd": 10, "n_hidden": 100, "n_layers": 5},
                      "train": {**LECTURE_SGD, "milestones": [150_000]}},
    # Lecture makemore 5: the WaveNet hierarchy, 76,579 parameters, SGD 0.1 then 0.01 from step 150,000.
    "lecture5": {"model": "wavenet", "config": {"block_size": 8, "n_embd": 24, "n_hidden": 128},
                 "train": {**LECTURE_SGD, "milestones": [150_000]}},
    "wavenet": {"model": "wavenet", "train": {**LECTURE_SGD, "steps": 20_000, "milestones": [15_000],
                                               "eval_interval": 2000}},
    # Sequence models on names: rows of 16 positions (the longest name and its end fit in one row).
    "rnn": {"model": "rnn", "config": {"block_size": 16, "n_embd": 64, "n_hidden": 128}, "train": SEQ_ADAMW},
    "gru": {"model": "gru", "config": {"block_size": 16, "n_embd": 64, "n_hidden": 128}, "train": SEQ_ADAMW},
    "lstm": {"model": "lstm", "config": {"block_size": 16, "n_embd": 64, "n_hidden": 128}, "train": SEQ_ADAMW},
    "bow": {"model": "bow", "config": {"block_size": 16, "n_embd": 64, "n_hidden": 256}, "train": SEQ_ADAMW},
    "transformer": {"model": "transformer", "config": {"block_size": 16, "n_layer": 4, "n_head": 4, "n_embd": 64},
                    "train": SEQ_ADAMW},
    # The best names model (issue 9): the Transformer above with dropout 0.1 and weight decay 0.1 (names are few:
    # 182k training targets), a higher rate decayed by cosine over ~9.5 minutes (measured on one shared CPU core;
    # a step of this size now takes both cores, see README: CPU threads).
    "names-best": {"model": "transformer",
                   "config": {"block_size": 16, "n_layer": 4, "n_head": 4, "n_embd": 64, "dropout": 0.1},
                   "train": {**SEQ_ADAMW, "lr": 2e-3, "warmup": 500, "min_lr": 1e-4, "weight_decay": 0.1,
                             "steps": 14_000, "eval_interval": 250}},
    # The best names recipe on a CPU core: a wider LSTM held back by dropout (at 0.3 it still over-fits: train 1.66
    # against val 1.93). Its recipe with seed 1 reached val 1.9248 at step 9000 in 844 s (one thread, beside
    # another run; 0.3: 1.9344). The tune starts its lstm from it.
    "names-lstm": {"model": "lstm", "config": {"block_size": 16, "n_embd": 64, "n_hidden": 256, "dropout": 0.45},
                   "train": {**SEQ_ADAMW, "lr": 5e-3, "warmup": 100, "min_lr": 5e-4, "batch_size": 128,
                             "weight_decay": 0.05, "steps": 9000, "eval_interval": 500}},
    # Beyond the lecture: val <= 2.10 on the lecture split in under three minutes on two CPU cores.
    "best": {"model": "mlp", "config": {"block_size": 5, "n_embd": 24, "n_hidden": 400},
             "train": {"optimizer": "adamw", "lr": 3e-3, "schedule": "cosine", "warmup": 200, "min_lr": 1e-4,
                       "batch_size": 256, "steps": 20_000, "eval_interval": 2000, "weight_decay": 0.05}},
    # GPT on continuous text (lecture 7), e.g. tiny Shakespeare. `lecture7` is the lecture's 10.7 M model (val ~1.48
    # on a GPU, where bf16 autocast turns itself on; add --compile there). `cpu` is the best model for two CPU cores
    # in well under a minute, and `gpt` (the model's own default) is the same recipe; its bf16 matmuls need a CPU with
    # AVX-512 BF16 or AMX to pay (elsewhere: --autocast off).
    "lecture7": {"model": "gpt",
                 "config": {"block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2},
                 "train": (GPT_TRAIN := {"optimizer": "adamw", "betas": [0.9, 0.99], "weight_decay": 0.1,
                                         "grad_clip": 1.0, "schedule": "cosine", "warmup": 100,
                                         "lr": 3e-4, "min_lr": 3e-5, "batch_size": 64, "steps": 5000,
                                         "eval_interval": 500})},
    # `cpu`: two layers of 192 (0.9 M parameters), block 64, batch 12, 1300 steps: val 1.81 on tiny Shakespeare in
    # 30-45 s on two cores. In a run this short the steps are the limit, not the depth: at 1300 steps, 1, 2 and 4
    # layers of 128 all reach val 1.86 (12 s, 18 s, 41 s). Longer runs go on improving (1600 steps: 1.758).
    "cpu": (GPT_CPU := {"model": "gpt",
                        "config": {"block_size": 64, "n_layer": 2, "n_head": 6, "n_embd": 192, "dropout": 0.0},
                        "train": {**GPT_TRAIN, "lr": 3e-3, "min_lr": 3e-4, "batch_size": 12, "steps": 1300,
                                  "eval_interval": 1300, "autocast": "bf16"}}),
    "gpt": GPT_CPU,
    # `cpu` on byte-pair tokens: the same model and recipe, 512 tokens learned from the training split. A token
    # stands for about 2.3 characters of tiny Shakespeare, so each step sees more text (compare in bits/char).
    "cpu-bpe": {**GPT_CPU, "tokens": {"tokenizer": "bpe", "vocab_size": 512}},
    # Lecture 7's first baseline on text: the bigram, batch 32, block 8, AdamW 1e-2, 3000 steps (val about 2.49).
    "lecture7-bigram": {"model": "bigram", "config": {"block_size": 8, "l2": 0.0},
                        "train": {"optimizer": "adamw", "lr": 1e-2, "batch_size": 32, "steps": 3000,
                                  "eval_interval": 500}},
}


def tokens(preset: str | None) -> dict[str, Any]:
    """The tokenizer a preset names ({"tokenizer": ..., "vocab_size": ...}), or {} (characters)."""
    return dict(PRESETS.get(preset or "", {}).get("tokens", {}))


def resolve(model: str | None, preset: str | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(model name, model settings, training settings) for a --model / --preset pair."""
    from makemore.errors import MakemoreError

    if preset is None:
        preset = model or "mlp"
    if preset not in PRESETS:
        if model is None or preset != model:
            raise MakemoreError(f"unknown preset {preset!r} (choose from: {', '.join(PRESETS)})")
        return model, {}, {}  # a model without a preset of its own: its config's and the trainer's defaults
    p = PRESETS[preset]
    if model is not None and model != p["model"]:
        raise MakemoreError(f"preset {preset!r} is for model {p['model']!r}, not {model!r}")
    return p["model"], dict(p.get("config", {})), dict(p.get("train", {}))
