"""Reading Prometheus data: series of a scraped exposition page, their increase between two scrapes,
a histogram's quantile, the numbers of a `/api/v1/query` answer."""

import math
from collections.abc import Iterable, Iterator

Labels = frozenset[tuple[str, str]]
"""A series' labels, usable as a dictionary key."""


def series(samples: Iterable, names: set[str]) -> dict[Labels, float]:
    return {frozenset(s.labels.items()): s.value for s in samples if s.name in names}


def bucket_problem(buckets: dict[Labels, float]) -> str | None:
    """What is wrong with a histogram's bucket bounds (the parser leaves labels as they are), or None."""
    for labels in buckets:
        bound = dict(labels).get("le")
        try:
            float(bound or "")
        except ValueError:
            return f"a bucket's upper bound le={bound!r} is not a number"
    return None


def increase(before: dict[Labels, float], after: dict[Labels, float], label: str) -> dict[str, float]:
    """The increase of each series from one scrape to the next, summed by the value of `label`.

    A series lower than before was reset (its process restarted): all of its value is new, as in
    Prometheus's `rate()`; a series that is new since the last scrape counts from zero.
    """
    sums: dict[str, float] = {}
    for labels, value in after.items():
        earlier = before.get(labels, 0.0)
        key = dict(labels).get(label, "")
        sums[key] = sums.get(key, 0.0) + (value - earlier if value >= earlier else value)
    return sums


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of cumulative bucket counts ({upper bound: count}), interpolated linearly inside
    its bucket like Prometheus's `histogram_quantile()`; in the `+Inf` bucket, the highest finite bound."""
    bounds = sorted(buckets)
    if not bounds or not buckets[bounds[-1]]:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return None


def query_values(body: dict) -> Iterator[float]:
    """The numbers of a `/api/v1/query` answer: one per series of a vector, or a scalar's."""
    if body["status"] != "success":
        raise ValueError("the query failed")
    data = body["data"]
    if data["resultType"] == "scalar":
        yield float(data["result"][1])
    else:
        yield from (float(series["value"][1]) for series in data["result"])
