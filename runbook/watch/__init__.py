"""Watching a release: metric sources, the baseline and bake windows, charts (Steps 13, 14, 20)."""
