"""Brains, schedulers, weight averaging, the checkpointer, and a recipe's start (experiment), loaders and results."""
