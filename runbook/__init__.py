"""runbook: a deployment runbook turned into an executable, declarative verifier."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The project folder: environments/, features/, dist/ and reports/ are found beside the engine."""
