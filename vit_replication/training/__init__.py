"""Training: the run's config and presets, optimiser and schedule, precision, the loop, the time budget."""
