"""Packages of the demo that the tests deploy (`build`), and the edits of its app.py that make a release
go wrong: at once (`broken_health`), after some requests (`failing_after_requests`), or when the test says
so (`once_marked` and its kinds)."""

import shutil
from pathlib import Path

from runbook import ROOT

from tests.cli import invoke

SLOW_MIGRATION = ("-- migrate:up\nSELECT pg_sleep({seconds});\nCREATE TABLE slow (id int);\n"
                  "-- migrate:down\nDROP TABLE slow;\n")
"""A migration that takes `seconds`: a deploy that is still running while a test acts."""


def build(folder: Path, version: str, migrations: dict[str, str] | None = None, edit=None,
          files: dict[str, str] | None = None) -> Path:
    """A package of the demo in `folder/dist`, optionally changed: extra migrations, app.py edited, extra
    files at its top (e.g. RUNS_ON_SCHEMA)."""
    source = folder / f"src-{version}"
    shutil.copytree(ROOT / "demo", source)
    for name, text in (migrations or {}).items():
        (source / "migrations" / name).write_text(text)
    for name, text in (files or {}).items():
        (source / name).write_text(text)
    if edit:
        (source / "app.py").write_text(edit((source / "app.py").read_text()))
    result = invoke(folder / "reports", "package", "--version", version, "--source", str(source), "--name", "demo",
                    "--dest", str(folder / "dist"))
    assert result.code == 0, result.output
    return folder / "dist" / f"demo-{version}.tar.gz"


def broken_health(text: str) -> str:
    """app.py whose /health answers 500."""
    return text.replace('return json_response(HTTPStatus.OK, {"status": "ok"})',
                        'return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"status": "broken"})')


def failing_after_requests(text: str, requests: int = 30) -> str:
    """app.py whose every answer is 500 once a worker has served `requests`: a release that degrades later."""
    return text.replace(
        "def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:",
        "SERVED = [0]\n\n\n"
        "def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:\n"
        "    SERVED[0] += 1\n"
        f"    if SERVED[0] > {requests}:\n"
        "        start_response('500 Internal Server Error', [('Content-Type', 'application/json')])\n"
        "        return [b'{\"error\": \"degraded\"}']",
    )


def once_marked(text: str, marker: Path, code: str) -> str:
    """app.py that runs `code` (lines of Python) at the start of every request once `marker` exists: a
    release that passes its verification and goes wrong when the test says so (e.g. when its bake starts)."""
    body = "".join(f"        {line}\n" for line in code.strip().splitlines())
    return text.replace(
        "def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:",
        "def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:\n"
        f"    if os.path.exists({str(marker)!r}):\n{body}",
    )


def slow_once_marked(text: str, marker: Path, seconds: float = 1.0) -> str:
    """app.py answering every request after `seconds` once `marker` exists."""
    return once_marked(text, marker, f"time.sleep({seconds})")


def flapping_once_marked(text: str, marker: Path, period: float, share: float = 0.25) -> str:
    """app.py answering 500 to every request in the first `share` of each `period` seconds once `marker` exists."""
    return once_marked(text, marker, f"""
if time.time() % {period} < {share * period}:
    start_response('500 Internal Server Error', [('Content-Type', 'application/json')])
    return [b'{{"error": "flapping"}}']""")
