"""Step 15's database rollback, chosen and stated before anything acts, with what it costs the data:

- **code only**, when the release returned to runs on the schema the database has now: nothing is touched.
  A package declares the schemas its code runs on in a `RUNS_ON_SCHEMA` file (`0002`, `0001..0003`, or
  `0001..` for every schema from 0001 on); without one, exactly its own (its newest migration);
- **down migrations**, when the live release holds the down parts: the tables and columns they drop are
  named, with the rows those hold now;
- **restore the backup**, only with `--restore-db` or when nothing else can work: the loss window (time
  since the backup, rows inserted, updated and deleted since) is stated, and a strict environment refuses
  it without `--accept-loss`.
"""

import re
from dataclasses import asdict, dataclass, field

from runbook.config import Environment, Host
from runbook.database import cost, queries
from runbook.database.migrations import FILE, Migration, parse
from runbook.engine import state
from runbook.errors import RunbookError
from runbook.hosts import commands as host_commands
from runbook.hosts import connection, runner
from runbook.release import releases

RANGE_FILE = "RUNS_ON_SCHEMA"
RANGE = re.compile(r"\s*(?P<low>\d+)?\s*(?P<dots>\.\.)?\s*(?P<high>\d+)?\s*")
CODE, DOWN, RESTORE = "code only", "down migrations", "restore the backup"


@dataclass
class Plan:
    path: str
    """code only, down migrations, or restore the backup."""
    why: str
    schema_now: str | None
    schema_after: str | None
    dropped: list[cost.Dropped] = field(default_factory=list)
    loss: cost.Loss | None = None
    refused: str | None = None
    """Why the rollback may not take this path as asked (a strict environment's restore without --accept-loss)."""

    def as_record(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        found = [f"database rollback: {self.path}, because {self.why}"]
        if self.path == CODE:
            found.append(f"no data is touched: the schema stays at {self.schema_now or 'none'}")
        elif self.path == DOWN:
            drops = "; ".join(map(str, self.dropped)) or "nothing (no DROP TABLE or DROP COLUMN in them)"
            found.append(f"the down migrations take the schema from {self.schema_now or 'none'} to "
                         f"{self.schema_after or 'none'}; they drop {drops}; what those hold, written since the "
                         "deploy too, is lost")
        else:
            found.append(f"every write since the backup is lost: {self.loss}")
        return found + ([f"REFUSED: {self.refused}"] if self.refused else [])


def runs_on(env: Environment, host: Host, release: str) -> tuple[int, int | None, str]:
    """The schemas the release's code runs on, (lowest, highest or None for any later), and where that is
    declared."""
    path = f"{releases.folder(env, release)}/{RANGE_FILE}"
    text = connection.read(host, path)
    if text is None:
        own = max(map(int, releases.migration_versions(env, host, release)), default=0)
        return own, own, f"its own schema (no {RANGE_FILE} in its package)"
    match = RANGE.fullmatch(text)
    if match is None or not (match["low"] or match["high"]):
        raise RunbookError(f"{host.name}:{path} must name a schema version or a range (0002, 0001..0003, 0001..); "
                           f"it says {text.strip()!r}")
    low = int(match["low"] or 0)
    high = None if match["dots"] and not match["high"] else int(match["high"] or low)
    return low, high, f"{RANGE_FILE} in its package: {text.strip()}"


def down_migrations(env: Environment, host: Host, release: str | None, now: str | None,
                    target_schema: str | None) -> list[Migration] | None:
    """The live release's migrations above `target_schema` up to `now` (None: all of them), newest first; None
    when no release folder holds them."""
    if release is None or release not in releases.listing(env, host):
        return None
    folder = f"{releases.folder(env, release)}/{env.app.migrations.dir}"
    names = runner.run(host, host_commands.list_folder(folder)).stdout.split()
    above = int(target_schema or 0)
    found = [parse(name, connection.read(host, f"{folder}/{name}") or "")
             for name in names if (m := FILE.match(name)) and above < int(m["version"])
             and (now is None or int(m["version"]) <= int(now))]
    return sorted(found, key=lambda m: -int(m.version))


def choose(env: Environment, live: str | None, target: str | None, target_schema: str | None,
           backup: dict | None, restore_db: bool, accept_loss: bool, settled: bool = True) -> Plan:
    """The database path of a rollback from `live` to `target` (on `target_schema`), and its cost.

    Not `settled`: the run was interrupted while the deploy's migrate command ran, which may still run, so the
    schema read now may change yet: the live release's down migrations run whatever it reads (the app's
    migrate command waits for the running one, then reverts what it applied)."""
    now, host = queries.schema_version(env), state.primary(env)
    if restore_db:
        return _restore(env, backup, now, target_schema, "it was asked for (--restore-db)", accept_loss)
    if not settled:
        reverting = down_migrations(env, host, live, None, target_schema)
        if reverting and all(m.down for m in reverting):
            read, labels = now or "none", ", ".join(m.label for m in reverting)
            return Plan(DOWN, f"the deploy was interrupted while its migrations ran, which may still be running (schema {read} as "
                              f"read now): {live}'s down parts of {labels} run after them", now, target_schema,
                        cost.dropped(env, reverting))
    if target is not None:
        low, high, declared = runs_on(env, host, target)
        if low <= int(now or 0) and (high is None or int(now or 0) <= high):
            return Plan(CODE, f"{target} runs on schema {now or 'none'} ({declared})", now, now)
        why_not = f"{target} does not run on schema {now or 'none'} ({declared})"
    elif now == target_schema:
        return Plan(CODE, f"no release was live before and the schema is still at {now or 'none'}", now, now)
    else:
        why_not = f"the schema is at {now}, not at {target_schema or 'none'} as before the deploy"
    reverting = down_migrations(env, host, live, now, target_schema)
    if reverting is None:
        why_not += f"; no release folder on {host.name} holds the down migrations ({live or 'no release'} is not there)"
    elif all(m.down for m in reverting):
        return Plan(DOWN, f"{why_not}; {live}'s down parts of {', '.join(m.label for m in reverting)} revert it",
                    now, target_schema, cost.dropped(env, reverting))
    else:
        why_not += f"; {', '.join(m.label for m in reverting if not m.down)} of {live} has no down part"
    if backup and backup.get("tables"):
        return _restore(env, backup, now, target_schema, f"nothing else can work: {why_not}", accept_loss)
    raise RunbookError(f"cannot roll back the database: {why_not}, and no backup is recorded to restore")


def _restore(env: Environment, backup: dict | None, now: str | None, target_schema: str | None, why: str,
             accept_loss: bool) -> Plan:
    if not backup or not backup.get("tables"):
        raise RunbookError("--restore-db restores the backup a deploy took; none is recorded for this rollback")
    refused = None if accept_loss or not env.strict else (
        f"{env.name} is a strict environment: restoring the backup discards every write made since it was taken; "
        "give --accept-loss to accept that loss")
    return Plan(RESTORE, why, now, target_schema, loss=cost.since(env, backup), refused=refused)


def target(env: Environment, requested: str | None) -> tuple[str | None, state.Live, dict | None]:
    """A manual rollback's release to return to: the one asked for, else the newest earlier live one; with
    the live release, and the backup the deploy that made it live took."""
    found = state.load(env)
    live = releases.current(env, state.primary(env))
    if requested:
        entry = found.entry(requested)
        if entry is None:
            raise RunbookError(f"release {requested!r} is not a release that was live on {env.name}; "
                               f"known: {', '.join(e.release for e in found.history) or 'none'}")
    else:
        earlier = [e for e in found.history if e.release != live]
        if not earlier:
            raise RunbookError(f"{env.name} has no previous release to roll back to (live: {live or 'none'})")
        entry = earlier[-1]
    made_live = found.entry(live) if live else None
    return live, entry, made_live.backup if made_live else None


def preview(env: Environment, requested: str | None, restore_db: bool, accept_loss: bool) -> list[str]:
    """`invoke rollback --plan`: what a rollback would do to the data and what it would cost; changes nothing."""
    live, entry, backup = target(env, requested)
    plan = choose(env, live, entry.release, entry.schema_version, backup, restore_db, accept_loss)
    return [f"rollback of {env.name} from {live or 'no release'} to {entry.release} (schema "
            f"{entry.schema_version or 'none'} when it was live)", *plan.lines(), "nothing was changed (--plan)"]
