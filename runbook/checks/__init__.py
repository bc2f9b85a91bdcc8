"""The checks the features run: HTTP probes, smoke journeys, dependencies, TLS, attestations, load; and the pytest plugin that records them."""
