"""Starting and stopping the app's services through their manager, on the demo app under a real supervisord."""

import subprocess
import time

from runbook import config
from runbook.release import services


def _web(app_env):
    env = config.load_environment(str(app_env.env_file))
    (host, service), = [(h, s) for h, s in services.placements(env) if s.name == "web"]
    return env, host, service


def test_a_start_of_a_service_another_start_left_starting_returns_once_it_runs(app_env, build, invoke):
    """A killed run's `supervisorctl start` leaves the program STARTING (supervisord goes on with it): the
    next start is told "already started" and must not claim the service runs before it does."""
    build("1.0.0")
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    env, host, service = _web(app_env)
    services.control(env, host, service, "stop")
    other = subprocess.Popen(services.manager(env, service).command("start"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        until = time.monotonic() + 30
        while "STARTING" not in services.running(env, host, service).detail:
            assert time.monotonic() < until and other.poll() is None, services.running(env, host, service)
            time.sleep(0.05)
    finally:
        other.kill()
        other.wait(timeout=10)
    assert services.control(env, host, service, "start") == "web was already running"
    assert services.running(env, host, service).ok, services.running(env, host, service)


def test_a_restart_of_a_stopped_service_starts_it(app_env, build, invoke):
    """A rotate restarts an instance without asking whether it runs: one found stopped (a crash, a person)
    is stopped all the same, which the manager says it already was, and started."""
    build("1.0.0")
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    env, host, service = _web(app_env)
    services.control(env, host, service, "stop")
    assert not services.running(env, host, service).ok
    assert services.restart(env, host, service).startswith("web was already stopped; ")
    assert services.running(env, host, service).ok, services.running(env, host, service)
