"""UTC time as the runbook writes it: now, time stamps to the second (runs, phases, locks, the
environment's state) and to the millisecond (journal events, watch samples), and durations in seconds.

    stamp(utc_now())       # "2026-11-28T09:30:00Z"
    stamp_ms(utc_now())    # "2026-11-28T09:30:00.250Z"
    between(start, end)    # 61.918: seconds, to the millisecond
"""

from datetime import datetime, timezone

STAMP = "%Y-%m-%dT%H:%M:%SZ"
STAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
"""What a `stamp` looks like, for the record's schema."""
STAMP_MS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
"""What a `stamp_ms` looks like, for the record's schema."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    """E.g. `2026-11-28T09:30:00Z`."""
    return moment.strftime(STAMP)


def stamp_ms(moment: datetime) -> str:
    """E.g. `2026-11-28T09:30:00.250Z`: sub-second times, since samples and events may be that close."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    """A `stamp` read back."""
    return datetime.strptime(text, STAMP).replace(tzinfo=timezone.utc)


def parse_ms(text: str) -> datetime:
    """A `stamp_ms` read back."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def seconds(elapsed: float) -> float:
    """A duration as the record keeps it: seconds, rounded to the millisecond."""
    return round(elapsed, 3)


def between(start: datetime, end: datetime) -> float:
    """The seconds from `start` to `end`, rounded to the millisecond."""
    return seconds((end - start).total_seconds())
