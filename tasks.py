"""Deployment runbook tasks: the release gate, deploy and rollback, the bake window, backups, packages,
status, the record's verification, and the local environment.

Exit codes: 0 success; 1 a check or phase failed (nothing changed, or rolled back);
2 usage, configuration or refusal (nothing changed); 3 failed and the rollback failed: a human is needed.

Each task imports the engine where it runs, so that `invoke --list` loads only invoke and this file
(tests/test_startup_imports.py pins it).
"""

import atexit
import functools
import gc
from pathlib import Path

from invoke import Collection, Exit, task

from runbook import usage
from runbook.errors import NEEDS_HUMAN, RunbookError
from runbook.secrets import redact

usage.exit_2_on_usage_errors()
atexit.register(gc.freeze)
"""A run's process ends without the interpreter's last sweep of its heap (0.2 s after a deploy): atexit calls this
first-registered handler last, once every other has run; the run's files are written and closed by then, and
what the sweep would free the process's end frees."""

ENV = {"env": "environment name or file (default: local)"}
SHOWN = {"json": "print one JSON object a line for each event of the run (for CI), and nothing else",
         "verbose": "also show the verifying phases' own pytest output"}
"""The terminal's options of the tasks that run phases (`runbook.console`)."""


def shown(json_: bool, verbose: bool) -> None:
    """Choose what the terminal shows for this run."""
    from runbook import console
    console.use(json_, verbose)


def checking() -> None:
    """Start the run's checking process before the engine is imported, so that their imports overlap."""
    from runbook.engine.checker import CHECKER
    CHECKER.warm()


def exits(body):
    """Turn the engine's errors into the exit code and a one-line message, never a traceback."""

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        try:
            code = body(c, *args, **kwargs)
        except RunbookError as e:
            raise Exit(redact(f"runbook: {e}"), code=e.exit_code) from None
        except Exception as e:  # outside any phase: the environment's state is not known from here
            raise Exit(redact(f"runbook: unexpected {type(e).__name__}: {e}; run `invoke status` to see the "
                              f"environment's state"), code=NEEDS_HUMAN) from None
        if code:
            raise Exit(code=code)

    return wrapper


@task(help=ENV | SHOWN | {"version": "the version to release", "change": "the change ticket it is for, e.g. CHG-123"})
@exits
def preflight(c, env="local", version=None, change=None, json_=False, verbose=False):
    """Run the pre-flight checklist (runbook Steps 1-5) as a release gate; writes reports/<run-id>/."""
    checking()
    from runbook.engine import entry
    shown(json_, verbose)
    return entry.gate(env, version, change)


@task(help=ENV | SHOWN | {"version": "the version to deploy (its package must be in the package folder)",
                  "restore_db": "on failure, restore the pre-deploy backup instead of down migrations",
                  "change": "the change ticket, e.g. CHG-123 (required where the environment says so)",
                  "approved_by": "who approved the change (not the operator)",
                  "emergency": "deploy outside the maintenance windows or in a freeze (needs --reason)",
                  "reason": "why an emergency deploy cannot wait",
                  "accept_loss": "with --restore-db in a strict environment: accept losing the writes since the backup"})
@exits
def deploy(c, version, env="local", restore_db=False, change=None, approved_by=None, emergency=False, reason=None,
           accept_loss=False, json_=False, verbose=False):
    """Deploy a version (runbook Steps 1-16): gate, backup, release, migrate, verify; roll back on failure."""
    checking()
    from runbook.engine import entry
    shown(json_, verbose)
    return entry.deploy(env, version, restore_db, change, approved_by, emergency, reason, accept_loss)


@task(help=ENV | SHOWN | {"to": "the release to return to (default: the one live before the current)",
                  "restore_db": "restore the recorded pre-deploy backup instead of running down migrations",
                  "break_lock": "break a stale lock left by a crashed run and recover from it",
                  "plan": "print what the rollback would do to the data and what it costs; change nothing",
                  "accept_loss": "accept losing the writes since the backup (a restore in a strict environment)"})
@exits
def rollback(c, env="local", to=None, restore_db=False, break_lock=False, plan=False, accept_loss=False, json_=False,
             verbose=False):
    """Roll back to the previous release (runbook Steps 14-16), with its database schema; --plan only says how."""
    from runbook import console
    if not plan:
        checking()
    from runbook.engine import entry
    shown(json_, verbose)
    if plan:
        console.current().say("\n".join(entry.rollback_plan(env, to, restore_db, accept_loss)))
        return 0
    return entry.rollback(env, to, restore_db, break_lock, accept_loss)


@task(help=ENV | SHOWN)
@exits
def watch(c, env="local", json_=False, verbose=False):
    """Measure the release serving now, then watch it against the rollback triggers (Steps 14, 20)."""
    from runbook.engine import entry
    shown(json_, verbose)
    return entry.watch(env)


@task(help=ENV | SHOWN)
@exits
def backup(c, env="local", json_=False, verbose=False):
    """Back up the environment's database and verify the backup (runbook Step 3)."""
    from runbook.engine import entry
    shown(json_, verbose)
    return entry.backup(env)


@task(help=ENV | {"json": "print JSON for machines"})
@exits
def status(c, env="local", json_=False):
    """Show current and previous releases, schema version, lock and the last run."""
    from runbook.engine import status as status_
    found = status_.collect(env)
    print(found.model_dump_json(indent=2) if json_ else found.text())


@task(help={"version": "version to stamp into the package", "source": "app folder (default: demo)",
            "name": "app name (default: the source folder's name)", "dest": "output folder (default: dist)"})
@exits
def package(c, version, source="demo", name=None, dest="dist"):
    """Build dist/<app>-<version>.tar.gz with a VERSION file and a SHA-256 manifest."""
    from runbook import ROOT
    from runbook.release import package as packages
    source_dir = Path(source) if Path(source).is_absolute() else Path.cwd() / source
    target = packages.build(source_dir, name or source_dir.resolve().name, version, ROOT / dest)
    print(f"{target} sha256 {packages.checksum(target)}")


@task(name="up", help={"env": "a local environment (default: local)"})
@exits
def local_up(c, env="local"):
    """Start the local environment's PostgreSQL, supervisord and app (not while a run holds the lock)."""
    from runbook import config, environments
    done = environments.start(config.load_environment(env))
    print("\n".join(done) if done else "local environment already up: nothing to do")


@task(name="down", help={"env": "a local environment (default: local)"})
@exits
def local_down(c, env="local"):
    """Stop what local.up started."""
    from runbook import config, local as local_env
    done = local_env.down(config.load_environment(env))
    print("\n".join(done) if done else "local environment already down: nothing to do")


@task(name="verify", help={"folder": "a run's folder, e.g. reports/<run-id>",
                           "env": "the environment the run was of: its file pins the trusted key (required without --key)",
                           "key": "a PEM public key file to trust instead of the environment's"})
@exits
def record_verify(c, folder, env=None, key=None):
    """Check a run's record against its signed manifest under a pinned key: 0 untouched, 1 each difference named."""
    from runbook.record import trust
    problems, summary = trust.verify_run(Path(folder), env, Path(key) if key else None)
    for problem in problems:
        print(problem)
    print(summary)
    return 1 if problems else 0


@task(positional=["item"], help=ENV | {"item": "the checklist item, e.g. vulnerability-scans-completed",
                  "version": "the version it covers", "change": "or the change ticket it covers, e.g. CHG-123",
                  "key": "your Ed25519 private key (PEM) that signs it",
                  "by": "who attests (default: $RUNBOOK_OPERATOR or the login name)"})
@exits
def attest(c, item, key, version=None, change=None, env="local", by=None):
    """Sign off a checklist item: append a signed entry to the environment's attestation file."""
    from runbook import config
    from runbook.governance import attestation
    from runbook.provenance import operator
    rules = config.load_environment(env).attestations
    if rules.file is None:
        raise RunbookError(f"environment {env!r} has no `attestations.file` to write to")
    entry = attestation.append(rules.file, Path(key), item, by or operator(), version, change)
    print(f"{rules.file}: {item} {entry}, signed by key {entry.key}")


namespace = Collection(
    preflight, deploy, rollback, watch, backup, status, package, attest,
    Collection("local", local_up, local_down),
    Collection("record", record_verify),
)
