"""The scenarios the runbook's feature files define, by name: what `waivers` and `not_applicable` may name."""

from functools import cache

from runbook import ROOT


@cache
def names() -> frozenset[str]:
    """Every scenario's name as a run records it: an outline's once for each of its examples."""
    from pytest_bdd.feature import get_features  # pulls in pytest: only when a waiver must be checked

    found = set()
    for feature in get_features([str(ROOT / "features")]):
        for template in feature.scenarios.values():
            contexts = [c for examples in template.examples for c in examples.as_contexts()] or [{}]
            found.update(template.render(context).name for context in contexts)
    return frozenset(found)
