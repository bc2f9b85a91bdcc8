"""Collects the runbook's feature files as tests: pytest-bdd cannot collect .feature files itself."""

from pytest_bdd import scenarios

scenarios(".")
