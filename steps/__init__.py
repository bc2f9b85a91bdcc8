"""Step definitions: each parses a Gherkin step, calls the engine in `runbook/`, and asserts."""
