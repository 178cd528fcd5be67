"""Brains, schedulers, weight averaging, the checkpointer and the experiment steps every recipe shares."""
