"""`uvs train`: every option of the original trainers (`uvs.train.OPTIONS`), recipes as presets."""

from __future__ import annotations

from uvs.cli.common import trainer_command
from uvs.train import trainer
from uvs.train_options import OPTIONS

train = trainer_command(OPTIONS, trainer, ["uvs", "train"], """Train a model; the best one on
dev is saved at SAVETO, with a last checkpoint and log.

Ctrl-C or SIGTERM writes the last checkpoint and prints the command that resumes it.
""")
