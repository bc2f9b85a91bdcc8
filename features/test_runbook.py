"""Collects the runbook's feature files as tests: pytest-bdd cannot collect .feature files itself. A verifying
phase's session binds only its own feature file (`--only-feature`); a plain `pytest features` binds them all."""

from pytest_bdd import scenarios

from runbook.checks import plugin

scenarios(*plugin.FEATURES)
