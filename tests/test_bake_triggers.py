"""The bake window's triggers against the real demo app under supervisord and gunicorn, with local-like
settings in seconds: a release that turns slow, or flaps between failing and answering, only once its bake
has started is rolled back by the trigger made for it; a healthy release under the same cadence never is.

The faulty releases pass their verification and go wrong when the test sees the bake start (a marker
file their app.py looks for). One environment serves the whole module, its tests in order: 1.0.0 is
deployed first, each faulty release is rolled back to it, the healthy one stays.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from . import apps, cli, packages

WATCH = {"interval_seconds": 2, "timeout": 1.8, "baseline_seconds": 4, "bake_seconds": 8,
         "error_window_seconds": 6, "latency_window_seconds": 6, "source": {"requests_per_sample": 20},
         "min_requests": 20, "error_rate": 0.1, "latency_factor": 5, "latency_floor_seconds": 0.4}
"""A window holds about 60 requests sent at random moments, each answered within 1.8 s or an error."""

HEALTHY_RUNS = 5


class Live:
    """The module's environment: the app, where its packages and reports go, and its marker file."""

    def __init__(self, app: apps.App, folder: Path) -> None:
        self.app, self.folder, self.marker = app, folder, folder / "bake-started"

    def build(self, version: str, edit=None) -> None:
        packages.build(self.folder, version, edit=edit)

    def invoke(self, *args: str) -> cli.Result:
        return cli.invoke(self.folder / "reports", *args)

    def deploy_marking_the_bake(self, version: str) -> cli.Result:
        """Deploy `version`, creating the marker once its bake phase has started."""
        reports = self.folder / "reports"
        running = cli.start_deploy(reports, self.app.env_file, version)
        try:
            cli.wait_for_phase(reports, running, version, "bake")
            self.marker.touch()
        finally:
            output, _ = running.communicate(timeout=300)
            self.marker.unlink(missing_ok=True)
        return cli.Result(running.returncode, output, reports)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("bake-triggers")
    with apps.deployable(folder, {"watch": WATCH}) as app:
        data = yaml.safe_load(app.env_file.read_text())
        # threads: a slow answer holds a thread, not the whole app (the prober's requests are concurrent)
        data["services"][0]["command"] = data["services"][0]["command"].replace(apps.GUNICORN,
                                                                                "--workers 2 --threads 8")
        app.env_file.write_text(yaml.safe_dump(data, sort_keys=False))
        here = Live(app, folder)
        here.build("1.0.0")
        first = here.invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert first.code == 0, first.output
        yield here


def assert_rolled_back_by(result: cli.Result, live: Live, trigger: str) -> None:
    assert result.code == 1, result.output
    fired = result.record["bake"]["fired"]
    assert fired["trigger"] == trigger, fired["condition"]
    assert result.record["rollback"]["reason"].startswith("Watch the release")
    assert live.app.status()["version"] == "1.0.0"


def test_a_release_slow_only_during_its_bake_is_rolled_back_by_the_latency_trigger(live: Live) -> None:
    live.build("1.1.0", edit=lambda text: packages.slow_once_marked(text, live.marker, 1.0))
    result = live.deploy_marking_the_bake("1.1.0")

    assert_rolled_back_by(result, live, "latency")
    assert result.record["bake"]["fired"]["condition"].startswith("p95 latency 1.")


@pytest.mark.parametrize("period", [1.0, 1.4], ids=["1Hz", "1.4s"])
def test_a_release_flapping_a_quarter_of_its_requests_is_rolled_back_by_the_error_trigger(live: Live,
                                                                                           period: float) -> None:
    version = f"1.1.{int(period * 10)}"
    live.build(version, edit=lambda text: packages.flapping_once_marked(text, live.marker, period))
    result = live.deploy_marking_the_bake(version)

    assert_rolled_back_by(result, live, "error rate")


def test_a_healthy_release_under_the_same_cadence_is_deployed(live: Live) -> None:
    live.build("1.2.0")
    result = live.invoke("deploy", "--env", str(live.app.env_file), "--version", "1.2.0")

    assert result.code == 0, result.output
    assert result.record["bake"]["fired"] is None
    assert live.app.status()["version"] == "1.2.0"


@pytest.mark.parametrize("run", range(HEALTHY_RUNS))
def test_a_healthy_release_watched_again_and_again_never_fires_a_trigger(live: Live, run: int) -> None:
    result = live.invoke("watch", "--env", str(live.app.env_file))

    assert result.code == 0, result.output
    bake = result.record["bake"]
    assert bake["fired"] is None, bake["fired"]
    assert any(o["seen"]["error rate"]["holds"] is False for o in bake["samples"])  # judged, not inconclusive
