"""Secrets never in argv, never in output; config files round-trip exactly.

The unit tests drive the redactor, the dotenv writer and the evidence a step shows; the two deploys run
the demo app under supervisord: one delivers values with every shell metacharacter and reads them back
from the app, the other rotates a canary secret and searches every output for both of its values.
"""

import html
import json
import random
import re
import shlex
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import dotenv
import markupsafe
import pytest

from runbook import envfile
from runbook.checks.evidence import STEPS, Evidence, Scenario, Step
from runbook.config import ConfigFile
from runbook.findings import Finding
from runbook.release import configfiles
from runbook.secrets import Redactor, learn, redact, redact_files

from . import apps

NASTY = ["", "plain", "it's", 'say "hi"', "a\\", "\\", '\\"', "\\'", "$HOME ${HOME} $(id) `id`", "#not a comment",
         " lead and trail ", "a=b=c", "x # y", "two\nlines", "crlf\r\n", "tab\there", "\u00fcnic\u00f8de \u2603",
         "\\n is not a newline", "';rm -rf / #", "a\\\\b", "\v\f\a\b"]
SHELL = "'\"\\$`#= \n\r\t;|&<>(){}[]*?!~^%\u00e9\u2603"


def nasty_values(count: int = 2000) -> dict[str, str]:
    """The fixed nasty strings and `count` random ones made of shell metacharacters, by key."""
    rng = random.Random(20240601)
    made = ["".join(rng.choice(SHELL + "ab") for _ in range(rng.randint(1, 16))) for _ in range(count)]
    return {f"K{i}": value for i, value in enumerate(NASTY + made)}


def test_dotenv_written_is_read_back_byte_for_byte_by_python_dotenv(tmp_path):
    values = nasty_values()
    path = tmp_path / ".env"
    path.write_text(envfile.render(values), encoding="utf-8")
    assert dotenv.dotenv_values(path, interpolate=False, encoding="utf-8") == values
    assert envfile.parse(path.read_text(encoding="utf-8")) == values


def canary() -> str:
    """A secret with quotes, `$`, backticks, a backslash, spaces and a newline; each piece between them is
    a random token of its own, so a fragment that escaped redaction is found by its token."""
    t = [uuid.uuid4().hex[:10] for _ in range(7)]
    return f"{t[0]}'{t[1]}\"{t[2]} ${t[3]} `{t[4]}`\\{t[5]}\n{t[6]}-second-line"


def tokens(value: str) -> list[str]:
    """The random tokens of a `canary`."""
    return re.findall(r"[0-9a-f]{10}", value)


def test_every_form_of_a_secret_is_masked():
    secret, mask = canary(), Redactor()
    mask.register(secret)
    for shown in (secret, shlex.quote(secret), json.dumps(secret), json.dumps({"k": secret}), repr(secret),
                  envfile.render({"K": secret}), html.escape(secret), str(markupsafe.escape(secret)),
                  str(markupsafe.escape(json.dumps(secret))), html.escape(json.dumps(secret)),
                  f"echo {shlex.quote(secret)} | cat", secret.splitlines()[1]):
        masked = mask(shown)
        assert not [t for t in tokens(secret) if t in masked], (shown, masked)


def test_the_values_a_deployed_file_held_are_learned():
    old_key, old_password = canary(), "old pass'" + uuid.uuid4().hex
    file = ConfigFile(path=".env", env={"KEY": "${SOME_SECRET}", "MIXED": "id-${OTHER}-end", "PLAIN": "visible"},
                      database_url_as="DATABASE_URL")
    old = envfile.render({"KEY": old_key, "MIXED": "id-mixedsecret1-end", "PLAIN": "visible",
                          "DATABASE_URL": f"postgresql://u:{quote(old_password, safe='')}@db/x"})
    configfiles.learn_secrets(file, old)
    shown = redact(old)
    assert not [t for t in tokens(old_key) if t in shown] and "mixedsecret1" not in shown
    assert old_password not in redact(f"password {old_password}") and 'PLAIN="visible"' in shown


def test_a_content_file_changed_since_still_gives_its_old_values():
    learn("[db]\nname = app\npassword = ${DB_PASSWORD}\n", "[db]\nname = old\npassword = contentsecret42\n")
    assert "contentsecret42" not in redact("the file said contentsecret42")


def test_evidence_titles_and_finding_subjects_are_redacted():
    secret = "subject-secret-" + uuid.uuid4().hex
    redact.register(secret)
    item = SimpleNamespace(stash=pytest.Stash())
    step = Step("Then", "it shows")
    item.stash[STEPS] = Scenario("f", "s", [], [step], current=step)
    evidence = Evidence(item)
    evidence.text(f"output of {secret}", "body")
    evidence.findings([Finding(f"host {secret}", True, "fine")])
    assert secret not in json.dumps(step.evidence) and "***" in step.evidence[0]["title"]


def test_every_text_file_of_a_folder_is_redacted_and_binary_ones_are_left(tmp_path):
    secret = "folder-secret-" + uuid.uuid4().hex
    redact.register(secret)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.html").write_text(f"<p>{html.escape(shlex.quote(secret))}</p>")
    (tmp_path / "data.bin").write_bytes(b"\xff\xfe" + secret.encode())
    redact_files(tmp_path)
    assert secret not in (tmp_path / "sub" / "page.html").read_text()
    assert (tmp_path / "data.bin").read_bytes() == b"\xff\xfe" + secret.encode()


BANNER = "it's \"quoted\" $HOME ${unclosed $(id) `id` \\back\\slash # not a comment a=b\nsecond line \u00fcnic\u00f8de \u2603"
"""A value (not a secret) with every kind of character an env file can get wrong (a whole `${NAME}` would be
a reference, resolved by the runbook)."""


def test_config_values_arrive_in_the_running_app_byte_for_byte(tmp_path, build, invoke):
    build("1.0.0")
    changes = {"app": {"config": [{"path": ".env", "mode": "0600", "database_url_as": "DATABASE_URL",
                                   "env": {"APP_SECRET_KEY": "${RUNBOOK_TEST_SECRET}", "APP_BANNER": BANNER,
                                           "APP_ADMIN_PASSWORD": "${RUNBOOK_TEST_SECRET}"}}]}}
    secret = "adm'in \"pw\" $x `y` \\z " + uuid.uuid4().hex
    with apps.deployable(tmp_path, changes) as app:
        result = invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0",
                        extra_env={"RUNBOOK_TEST_SECRET": secret})
        assert result.code == 0, result.output
        assert app.status()["banner"] == BANNER
        app.secret = secret
        app.write_items(1)  # the login takes the password exactly as configured


class CommandLines:
    """Every process's command line, sampled every 50 ms while the block runs; the samples that hold any
    of `needles`."""

    def __init__(self, needles: list[str]) -> None:
        self.needles = [n.encode() for n in needles]
        self.hits: set[bytes] = set()
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "CommandLines":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join()

    def _sample(self) -> None:
        while not self.stop.is_set():
            for path in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    line = path.read_bytes()
                except OSError:
                    continue
                if any(n in line for n in self.needles):
                    self.hits.add(line)
            self.samples += 1
            self.stop.wait(0.05)


def test_a_rotated_canary_secret_never_shows_in_reports_journal_terminal_or_command_lines(tmp_path, build, invoke):
    build("1.0.0")
    build("1.1.0")
    first, second = canary(), canary()
    db_password = "db pass'\"$`" + uuid.uuid4().hex
    changes = {"app": {"config": [{"path": ".env", "mode": "0600", "database_url_as": "DATABASE_URL",
                                   "env": {"APP_SECRET_KEY": "${RUNBOOK_TEST_CANARY}",
                                           "APP_ADMIN_PASSWORD": "${RUNBOOK_TEST_SECRET}"}}]}}
    with apps.deployable(tmp_path, changes) as app:
        data = apps.yaml.safe_load(app.env_file.read_text())
        data["database"]["url"] = app.database.replace("postgres@", "postgres:${RUNBOOK_TEST_DB_PASSWORD}@")
        app.env_file.write_text(apps.yaml.safe_dump(data, sort_keys=False))
        common = {"RUNBOOK_TEST_DB_PASSWORD": quote(db_password, safe="")}
        needles = tokens(first) + tokens(second) + [db_password, quote(db_password, safe=""), db_password[-32:]]
        outputs = []
        with CommandLines(needles) as lines:
            for version, value in (("1.0.0", first), ("1.1.0", second)):
                result = invoke("deploy", "--env", str(app.env_file), "--version", version,
                                extra_env=common | {"RUNBOOK_TEST_CANARY": value})
                assert result.code == 0, result.output
                outputs.append(result.output)
                phases = {p["name"] for p in result.record["phases"]}
                assert {"backup", "migrate", "configure"} <= phases, phases
        assert lines.samples > 20 and not lines.hits, lines.hits
        diff = result.record["configuration_changes"][".env"]
        assert "-APP_SECRET_KEY=" in diff and "+APP_SECRET_KEY=" in diff, diff
        shown = {f"terminal {i}": out for i, out in enumerate(outputs)}
        shown |= {str(p): p.read_bytes().decode(errors="replace") for p in (tmp_path / "reports").rglob("*")
                  if p.is_file()}
        assert len(shown) > 10
        leaks = {name: [n for n in needles if n in text] for name, text in shown.items()}
        assert not {name: found for name, found in leaks.items() if found}
