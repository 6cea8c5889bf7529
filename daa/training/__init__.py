"""Training machinery: distributed setup, the Trainer, checkpoints, evaluation and logging."""
