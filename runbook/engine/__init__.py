"""The engine: a run, its phases in runbook order, and the walk that executes them."""
