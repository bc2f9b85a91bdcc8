"""Listing the tasks and showing the status load only what they need: the heavy libraries are imported
where they are used (issue 17, item 2). Each check runs in a fresh child, whose `sys.modules` says
what was loaded; timing is for bench/startup.py, never for a test."""

import json
import subprocess
import sys

from runbook import ROOT

NEVER_FOR_LISTING = ("runbook.engine", "runbook.config", "pydantic", "psycopg", "matplotlib", "ansible",
                     "playwright", "pytest", "requests", "pika", "redis", "jinja2", "cryptography", "tenacity")
NEVER_FOR_STATUS = ("matplotlib", "ansible", "playwright", "pytest", "pytest_bdd", "requests", "pika", "redis",
                    "cryptography", "tenacity", "runbook.engine.sequences", "runbook.engine.walk")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter in the project folder has loaded after running `code`."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def heavy(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(m == n or m.startswith(n + ".") for n in names)}


def test_invoke_list_loads_neither_the_engine_nor_any_heavy_library():
    modules = loaded_after("from invoke.main import program\nprogram.run(['invoke', '--list'], exit=False)")
    assert "tasks" in modules, "the probe did not load the tasks file"
    assert not heavy(modules, NEVER_FOR_LISTING)


def test_importing_the_tasks_file_loads_neither_the_engine_nor_any_heavy_library():
    modules = loaded_after("sys.path.insert(0, '.')\nimport tasks")
    assert not heavy(modules, NEVER_FOR_LISTING)


def test_the_status_task_loads_no_deploy_machinery_browser_or_chart_library():
    modules = loaded_after("import runbook.engine.status")
    assert "runbook.engine.status" in modules
    assert not heavy(modules, NEVER_FOR_STATUS)


def test_the_checking_process_is_started_before_pydantic_is_imported():
    """`tasks.checking` starts the server before the engine's imports, to overlap them with its own: importing
    the checker must not cost those imports' first 60 ms (pydantic) before the server is started."""
    modules = loaded_after("from runbook.engine.checker import CHECKER")
    assert "runbook.engine.checker" in modules
    assert not heavy(modules, ("pydantic", "pytest"))


def test_a_runs_own_process_loads_no_pytest_its_checks_run_in_the_checking_process():
    """What a deploy, a rollback or a preflight imports before its first phase: pytest (0.07 s) and the browser
    are the checking process's alone."""
    modules = loaded_after("import runbook.engine.entry")
    assert "runbook.engine.entry" in modules
    assert not heavy(modules, ("pytest", "_pytest", "pytest_bdd", "pytest_html", "playwright"))
