"""Environment files: validated before anything runs; each mistake named by file, key and line."""

import time

import pytest

from runbook import config
from runbook.governance import attestation
from runbook.errors import CheckFailed, ConfigError


@pytest.mark.parametrize("name", ["local", "staging", "prod"])
def test_shipped_environment_files_are_valid(name):
    env = config.load_environment(name)
    assert env.name == name and env.hosts


def test_staging_and_prod_reach_their_hosts_over_ssh_with_systemd():
    for name in ("staging", "prod"):
        env = config.load_environment(name)
        assert all(h.spec.startswith("ssh://") for h in env.hosts)
        assert {s.manager for s in env.services} == {"systemd"}
        assert env.attestations.required


def _error(path) -> str:
    with pytest.raises(ConfigError) as error:
        config.load_environment(str(path))
    assert error.value.exit_code == 2
    return str(error.value)


def test_unknown_key_is_named_with_its_line(make_env):
    path = make_env()
    path.write_text(path.read_text().replace("  backup_dir:", "  bakup_dir: /tmp/x\n  backup_dir:"))
    message = _error(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "bakup_dir" in text)
    assert f"{path}: database.bakup_dir (line {line}): unknown key" in message


def test_wrong_type_is_named_with_its_line(make_env):
    path = make_env({"thresholds": {"disk_free_percent": "plenty"}})
    message = _error(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "disk_free_percent" in text)
    assert f"{path}: thresholds.disk_free_percent (line {line}): Input should be a valid number" in message


def test_malformed_yaml_is_named_with_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nhosts:\n  - name: a\n   spec: local://\n")
    message = _error(path)
    assert message.startswith(f"{path}, line 4") and "malformed YAML" in message


def test_unknown_environment_lists_the_known_ones():
    message = _error("nowhere")
    assert "unknown environment 'nowhere'" in message and "known: local, prod, staging" in message


def test_missing_environment_file_is_named(tmp_path):
    assert f"{tmp_path / 'absent.yaml'}: the environment file does not exist" in _error(tmp_path / "absent.yaml")


def test_password_written_in_a_url_is_refused(make_env):
    path = make_env({"database": {"url": "postgresql://demo:hunter2@db:5432/demo"}})
    assert "database.url" in (message := _error(path)) and "reference it as ${NAME}" in message


def test_mode_must_be_a_quoted_octal_string(make_env):
    path = make_env({"files": [{"path": "/etc/passwd", "mode": 644}]})
    assert 'files[0].mode' in (message := _error(path)) and 'quoted octal string' in message


def test_unset_secret_reference_is_named_before_anything_runs(make_env, monkeypatch):
    monkeypatch.delenv("RUNBOOK_TEST_SECRET", raising=False)
    env = config.load_environment(str(make_env()))
    with pytest.raises(ConfigError) as error:
        config.resolve_secrets(env)
    assert "app.config[0].env.APP_SECRET_KEY: ${RUNBOOK_TEST_SECRET} is not set" in str(error.value)


@pytest.mark.parametrize("environment", ["nowhere", "broken"])
def test_bad_environment_ends_preflight_with_exit_2_and_no_traceback(invoke, tmp_path, environment):
    if environment == "broken":
        (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
        environment = str(tmp_path / "broken.yaml")
    result = invoke("preflight", "--env", environment)
    assert result.code == 2
    assert result.output.startswith("runbook: ") and "Traceback" not in result.output
    assert not result.reports.exists() or not any(result.reports.iterdir())


def _laughs(levels: int) -> str:
    """The billion laughs: each level an anchored list of nine aliases of the level below."""
    lines = ["name: laughs", 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_nested_aliases_are_refused_fast_with_exit_2(invoke, tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(_laughs(9))
    result = invoke("preflight", "--env", str(path))
    assert result.code == 2 and "Traceback" not in result.output
    assert f"{path}: refused YAML" in result.output and "aliases are expanded" in result.output
    started = time.monotonic()
    _error(path)
    assert time.monotonic() - started < 0.5


def test_too_many_aliases_and_recursive_ones_are_refused(tmp_path):
    many = tmp_path / "many.yaml"
    many.write_text("name: many\nx: &x 1\nitems: [" + ", ".join(["*x"] * 101) + "]\n")
    assert "more than 100 aliases" in _error(many)
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("name: loop\nx: &x [*x]\n")
    assert "an alias refers to the node that holds it" in _error(recursive)


def test_collections_nested_too_deep_are_refused_with_their_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: deep\nitems:\n  " + "[" * 150 + "]" * 150 + "\n")
    assert _error(deep) == f"{deep}: refused YAML, line 3: nested more than 100 deep"
    nested = tmp_path / "nested.yaml"
    nested.write_text("name: nested\nitems: " + "[" * 99 + "]" * 99 + "\n")
    assert "refused" not in _error(nested)  # within the bound: read, then judged as settings


def test_oversized_environment_file_is_refused_with_exit_2(invoke, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\n" + "# padding\n" * 110_000)
    assert f"{path}: refused: larger than 1048576 bytes" in _error(path)
    result = invoke("preflight", "--env", str(path))
    assert result.code == 2 and "larger than 1048576 bytes" in result.output


def test_attestation_file_with_nested_aliases_fails_its_check(tmp_path):
    file = tmp_path / "attestations.yaml"
    file.write_text(_laughs(9))
    with pytest.raises(CheckFailed) as error:
        attestation.read(file)
    assert str(error.value).startswith(f"attestation file {file}: refused YAML")
