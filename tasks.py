"""Deployment runbook tasks: the release gate, packages and the local environment.

Exit codes: 0 success; 1 a check or phase failed (nothing changed, or rolled back);
2 usage, configuration or refusal (nothing changed); 3 a human is needed.
"""

import functools
from pathlib import Path

from invoke import Collection, Exit, task

from runbook import ROOT, config, local as local_env, package as packages, run
from runbook.errors import RunbookError


def exits(body):
    """Turn the engine's errors into the exit code and a one-line message, never a traceback."""

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        try:
            code = body(c, *args, **kwargs)
        except RunbookError as e:
            raise Exit(f"runbook: {e}", code=e.exit_code) from None
        if code:
            raise Exit(code=code)

    return wrapper


@task(help={"env": "environment name or file (default: local)", "version": "the version to release"})
@exits
def preflight(c, env="local", version=None):
    """Run the pre-flight checklist (runbook Steps 1-5) as a release gate; writes reports/<run-id>/."""
    return run.gate(env, version)


@task(help={"version": "version to stamp into the package", "source": "app folder (default: demo)",
            "name": "app name (default: the source folder's name)", "dest": "output folder (default: dist)"})
@exits
def package(c, version, source="demo", name=None, dest="dist"):
    """Build dist/<app>-<version>.tar.gz with a VERSION file and a SHA-256 manifest."""
    source_dir = Path(source) if Path(source).is_absolute() else Path.cwd() / source
    target = packages.build(source_dir, name or source_dir.resolve().name, version, ROOT / dest)
    print(f"{target} sha256 {packages.checksum(target)}")


@task(name="up", help={"env": "a local environment (default: local)"})
@exits
def local_up(c, env="local"):
    """Start the local environment's PostgreSQL and supervisord; a no-op when they run."""
    done = local_env.up(config.load_environment(env))
    print("\n".join(done) if done else "local environment already up: nothing to do")


@task(name="down", help={"env": "a local environment (default: local)"})
@exits
def local_down(c, env="local"):
    """Stop what local.up started."""
    done = local_env.down(config.load_environment(env))
    print("\n".join(done) if done else "local environment already down: nothing to do")


namespace = Collection(preflight, package, Collection("local", local_up, local_down))
