"""The Train page's form, defined once: which TrainConfig settings it shows (and a share link
carries), and the ranges of its number widgets."""
from __future__ import annotations

# The TrainConfig settings the form shows; their widget keys are "tr_" + name.
FIELDS = ("dataset", "optimizer", "lr", "scheduler", "loss", "batch_size", "epochs", "augment", "device",
          "precision", "momentum", "weight_decay", "label_smoothing", "val_size", "ema", "tta", "drop_last",
          "accum_steps", "processes")
# The form's number widgets: (min, max). Narrower than TrainConfig's own rules for some fields;
# a shared link is checked against these too, so Streamlit never clamps a shared value silently.
# (processes is a choice of 1..the machine's most; a link asking for more is brought down to it.)
RANGES = {"lr": (1e-6, 10.0), "batch_size": (1, 4096), "epochs": (1, 1000), "momentum": (0.0, 0.999),
          "weight_decay": (0.0, 1.0), "label_smoothing": (0.0, 0.5), "val_size": (0, 100_000), "ema": (0.0, 0.9999),
          "accum_steps": (1, 1024)}
# What a share link carries: the settings plus the model's source (the current model or a preset) and the preset.
SHARED = (*FIELDS, "source", "preset")
# The settings whose choices are shown with a translated label (catalogue key "option.<setting>.<value>").
LABELLED = ("dataset", "optimizer", "scheduler", "loss", "device")
