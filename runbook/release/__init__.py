"""Putting a release in place: the package, release folders, configuration, services, rollout batches (Steps 7 and 9)."""
