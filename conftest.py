"""Loads the step definitions for the features in features/. The runbook plugin itself is a pytest11
entry point, loaded before pytest reads its command line, so `--env path/to/file.yaml` is an option."""

pytest_plugins = [
    "steps.hosts",
    "steps.database",
    "steps.package",
    "steps.services",
    "steps.security",
    "steps.configuration",
    "steps.release",
    "steps.http",
    "steps.ui",
    "steps.performance",
    "steps.monitoring",
    "steps.alongside",
]
