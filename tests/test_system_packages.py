"""scripts/system-packages: the one place that installs what the project needs from Debian."""

import os
import subprocess

from runbook import ROOT

SCRIPT = ROOT / "scripts" / "system-packages"


def _run(*args: str, root=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"SYSTEM_PACKAGES_ROOT": str(root)} if root else {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def _root_with(tmp_path, *programs: str):
    for program in programs:
        path = tmp_path / program.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return tmp_path


LOCAL_STACK = ["/usr/sbin/haproxy", "/usr/bin/prometheus", "/usr/bin/chromium-headless-shell", "/usr/sbin/runuser", "/usr/bin/ssh",
               "/usr/bin/sha256sum", "/usr/bin/redis-server", "/usr/sbin/rabbitmq-server",
               "/usr/lib/postgresql/15/bin/initdb"]


def test_a_missing_package_is_named_in_the_apt_line_and_exits_2(tmp_path):
    root = _root_with(tmp_path, *[p for p in LOCAL_STACK if p != "/usr/bin/prometheus"])
    result = _run(root=root)
    assert result.returncode == 2, result
    assert "sudo apt-get install -y prometheus\n" in result.stderr, result.stderr


def test_the_tests_option_adds_the_test_hosts_packages(tmp_path):
    result = _run("--tests", root=_root_with(tmp_path, *LOCAL_STACK))
    assert result.returncode == 2
    assert "apt-get install -y iproute2 openssh-server rsync iptables debootstrap systemd-container chromium" in result.stderr


def test_nothing_missing_exits_0_and_installs_nothing(tmp_path):
    result = _run(root=_root_with(tmp_path, *LOCAL_STACK))
    assert (result.returncode, result.stderr) == (0, "")


def test_an_unknown_option_is_a_usage_error():
    result = _run("--everything")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_this_machine_has_every_package_the_tests_need():
    result = _run("--tests", root="/")  # a root given: it reports, and never installs from a test
    assert result.returncode == 0, result.stderr
