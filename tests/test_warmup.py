"""Work a run does ahead while it waits for its checks (`runbook.engine.warmup`): once per process, what it
raises never the run's failure, and never still under way when a watch window starts sampling."""

import threading
import time
from types import SimpleNamespace

import pytest

from runbook.engine import warmup
from runbook.engine.actions import watch as watch_phases
from runbook.watch import bake, charts, metrics


class WindowStarted(Exception):
    """Raised by a stand-in for the window's sampling: the test only needs to know when it began."""


@pytest.fixture(autouse=True)
def nothing_started_yet(monkeypatch) -> None:
    monkeypatch.setattr(warmup, "_started", {})


def test_work_ahead_runs_once_per_name_and_what_it_raises_is_dropped() -> None:
    calls = []

    def broken() -> None:
        calls.append(threading.current_thread().name)
        raise RuntimeError("a broken template")

    warmup.ahead("pages", broken)
    warmup.ahead("pages", broken)
    warmup.settle()
    assert calls == ["warm pages"]


@pytest.mark.parametrize("window", ["baseline", "bake"])
def test_a_watch_window_starts_sampling_only_once_the_work_ahead_has_ended(monkeypatch, window: str) -> None:
    events = []
    under_way = threading.Event()

    def slow() -> None:
        under_way.set()
        time.sleep(0.5)
        events.append("work ahead ended")

    def sampling(*args, **kwargs):
        events.append("window started")
        raise WindowStarted

    monkeypatch.setattr(metrics, "source", lambda env: None)
    monkeypatch.setattr(charts, "agg_pyplot", lambda: None)
    monkeypatch.setattr(bake, "baseline", sampling)
    monkeypatch.setattr(bake, "bake", sampling)
    d = SimpleNamespace(env=SimpleNamespace(endpoints=SimpleNamespace(smoke=None)), baseline=object())
    warmup.ahead("slow", slow)
    assert under_way.wait(5)
    with pytest.raises(WindowStarted):
        (watch_phases.measure_baseline if window == "baseline" else watch_phases.bake_release)(d)
    assert events == ["work ahead ended", "window started"]
