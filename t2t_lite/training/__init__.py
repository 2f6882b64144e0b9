"""Training: the train step and loop, losses, learning-rate schedules, checkpoints, summaries,
stop requests and multi-worker helpers."""
