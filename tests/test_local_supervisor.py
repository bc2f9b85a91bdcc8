"""The local stack's supervisord: `up` returns only once the stack's programs accept connections."""

import shutil
import socket
import sys
import time
import types
import uuid

import pytest

from runbook import ROOT
from runbook.errors import RunbookError
from runbook.local import supervisor
from runbook.local.paths import Paths

from . import apps


@pytest.fixture
def state():
    """A state folder of its own (under ROOT: supervisord's socket path must stay short); supervisord
    shut down afterwards."""
    p = Paths(ROOT / ".local" / f"sup-{uuid.uuid4().hex[:8]}")
    yield p
    if supervisor.running(p):
        supervisor.supervisorctl(p, "shutdown")
    shutil.rmtree(p.state, ignore_errors=True)


def _start(p: Paths, command: str, port: int) -> list[supervisor.Program]:
    programs = [supervisor.Program("part", command, p.state, listens=("127.0.0.1", port))]
    p.state.mkdir(parents=True)
    started, _ = supervisor.up(types.SimpleNamespace(name="test"), p, programs)
    assert started == ["started supervisord"]
    return programs


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_await_listening_returns_only_once_a_slow_starting_program_accepts_connections(state):
    port = apps.free_port()
    programs = _start(state, f"sh -c 'sleep 2; exec {sys.executable} -m http.server --bind 127.0.0.1 {port}'", port)
    assert not _accepts(port)
    supervisor.await_listening(state, programs, 30)
    assert _accepts(port)


def test_a_program_that_never_listens_is_an_error_naming_it_its_address_and_its_log(state):
    port = apps.free_port()
    programs = _start(state, "sleep 60", port)
    began = time.monotonic()
    with pytest.raises(RunbookError, match=rf"part did not listen on 127.0.0.1:{port} within 3 s") as raised:
        supervisor.await_listening(state, programs, 3)
    assert time.monotonic() - began < 10
    assert str(state.supervisor / "logs" / "part.log") in str(raised.value)


def test_a_program_that_keeps_exiting_is_an_error_naming_its_state_before_the_deadline(state):
    port = apps.free_port()
    programs = _start(state, "sh -c 'exit 3'", port)
    began = time.monotonic()
    with pytest.raises(RunbookError, match=rf"part is FATAL, not listening on 127.0.0.1:{port}"):
        supervisor.await_listening(state, programs, 120)
    assert time.monotonic() - began < 60
