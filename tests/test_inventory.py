"""Hosts named by an Ansible inventory (INI or YAML): roles from its groups, variables merged as Ansible
merges them, specs from its connection variables; a missing or broken inventory ends a run with exit 2."""

import getpass
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runbook import ROOT, config
from runbook.errors import ConfigError

INI = """\
    [web]
    web1 ansible_host=192.0.2.11 ansible_user=deploy http_port=8081
    web2 ansible_host=192.0.2.12 ansible_port=2222

    [app]
    app1 ansible_host=192.0.2.21
    app2 ansible_connection=local

    [db]
    db1

    [backend:children]
    app
    db

    [backend:vars]
    tier=back
    region=eu-central

    [all:vars]
    region=eu-west
    http_port=80
"""

YAML = """\
    all:
      vars:
        region: eu-west
        http_port: 80
      children:
        web:
          hosts:
            web1: {ansible_host: 192.0.2.11, ansible_user: deploy, http_port: 8081}
            web2: {ansible_host: 192.0.2.12, ansible_port: 2222}
        backend:
          vars: {tier: back, region: eu-central}
          children:
            app:
              hosts:
                app1: {ansible_host: 192.0.2.21}
                app2: {ansible_connection: local}
            db:
              hosts:
                db1:
"""

EXPECTED = {
    "web1": ("ssh://deploy@192.0.2.11:22", ["web"], {"http_port": 8081, "region": "eu-west", "ansible_user": "deploy"}),
    "web2": ("ssh://ops@192.0.2.12:2222", ["web"], {"http_port": 80, "region": "eu-west", "ansible_port": 2222}),
    "app1": ("ssh://ops@192.0.2.21:22", ["app", "backend"], {"tier": "back", "region": "eu-central"}),
    "app2": ("local://", ["app", "backend"], {"tier": "back", "ansible_connection": "local"}),
    "db1": ("ssh://ops@db1:22", ["backend", "db"], {"tier": "back", "region": "eu-central"}),
}


def inventory_env(make_env, tmp_path, text: str, name: str, ssh: dict | None = None):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    settings = {"user": "ops", "connect_timeout": 7} if ssh is None else ssh
    return make_env({"hosts": None, "inventory": str(path), "ssh": settings})


@pytest.mark.parametrize("text, name", [(INI, "hosts.ini"), (YAML, "hosts.yaml")], ids=["ini", "yaml"])
def test_inventory_groups_children_and_vars_become_hosts_with_roles_vars_and_specs(make_env, tmp_path, text, name):
    env = config.load_environment(str(inventory_env(make_env, tmp_path, text, name)))
    found = {h.name: h for h in env.hosts}
    assert list(found) == list(EXPECTED)
    for host_name, (spec, roles, some_vars) in EXPECTED.items():
        host = found[host_name]
        assert (host.spec, host.roles) == (spec, roles), host_name
        assert some_vars.items() <= host.vars.items(), (host_name, host.vars)
        # ansible's own variables (inventory_file, group_names, ...) are not the host's.
        assert not {"inventory_file", "inventory_hostname", "group_names", "groups"} & host.vars.keys()
        assert host.connect_timeout == 7 and host.ssh == env.ssh
    assert found["web1"].address == "192.0.2.11" and found["db1"].address == "db1"
    assert [h.name for h in env.hosts_with("web")] == ["web1", "web2"]
    assert [h.name for h in env.hosts_with("backend")] == ["app1", "app2", "db1"]
    assert [h.name for h in env.hosts_with_any(["db", "web"])] == ["web1", "web2", "db1"]
    # The hosts as the record shows them are plain data, whatever types ansible parsed them into.
    assert env.model_dump(mode="json")["hosts"][0]["vars"]["http_port"] == 8081
    assert "ssh" not in env.model_dump()["hosts"][0]


def test_group_vars_and_host_vars_beside_the_inventory_are_merged_as_ansible_does(make_env, tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text("http_port: 9000\nlb_pool: front\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "web2.yml").write_text("lb_pool: canary\n")
    env = config.load_environment(str(inventory_env(make_env, tmp_path, INI, "hosts.ini")))
    web1, web2 = env.hosts_with("web")
    # A host's own inventory variable beats its group's file; host_vars/ beats group_vars/.
    assert (web1.vars["http_port"], web1.vars["lb_pool"]) == (8081, "front")
    assert (web2.vars["http_port"], web2.vars["lb_pool"]) == (9000, "canary")


def test_without_ssh_user_hosts_log_in_as_the_current_user(make_env, tmp_path):
    env = config.load_environment(str(inventory_env(make_env, tmp_path, INI, "hosts.ini", ssh={})))
    by_name = {h.name: h for h in env.hosts}
    assert by_name["app1"].spec == f"ssh://{getpass.getuser()}@192.0.2.21:22"
    assert by_name["web1"].spec == "ssh://deploy@192.0.2.11:22"
    assert by_name["app1"].connect_timeout == 5


def test_inventory_and_ssh_paths_are_taken_from_the_project_folder(tmp_path):
    # prod.yaml's inventory is a relative path: read from elsewhere, the file names the same inventory.
    path = tmp_path / "relative.yaml"
    path.write_text((ROOT / "environments" / "prod.yaml").read_text().replace(
        "  known_hosts: ~/.ssh/known_hosts\n", "  known_hosts: keys/known_hosts\n  identity_file: keys/id_ed25519\n"))
    env = config.load_environment(str(path))
    assert env.inventory == ROOT / "environments" / "prod.inventory.ini"
    assert [(h.name, h.spec, h.roles) for h in env.hosts] == [
        ("app1", "ssh://deploy@app1.prod.example.com:22", ["app", "migrate", "web"]),
        ("app2", "ssh://deploy@app2.prod.example.com:22", ["app", "web"]),
    ]
    assert (env.ssh.known_hosts, env.ssh.identity_file) == (ROOT / "keys" / "known_hosts", ROOT / "keys" / "id_ed25519")
    assert config.load_environment("prod").ssh.known_hosts == Path.home() / ".ssh" / "known_hosts"


def _error(path) -> str:
    with pytest.raises(ConfigError) as error:
        config.load_environment(str(path))
    assert error.value.exit_code == 2
    return str(error.value)


def test_a_host_the_runbook_cannot_take_is_named_with_its_inventory(make_env, tmp_path):
    env = inventory_env(make_env, tmp_path, "[app]\nApp1\n", "upper.ini")
    assert f"{tmp_path / 'upper.ini'}: host App1: name: String should match pattern" in _error(env)
    env = inventory_env(make_env, tmp_path, "[app]\napp1 ansible_connection=winrm\n", "winrm.ini")
    assert "host app1: ansible_connection 'winrm' is not supported (ssh or local)" in _error(env)


def test_a_yaml_inventory_of_nested_aliases_is_refused_before_ansible_reads_it(make_env, tmp_path):
    levels = ["all:", "  vars:", '    l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    env = inventory_env(make_env, tmp_path, "\n".join(levels) + "\n  hosts:\n    web1:\n", "laughs.yaml")
    assert f"{tmp_path / 'laughs.yaml'}: refused YAML, line " in _error(env)


def test_ansible_says_nothing_on_the_terminal(make_env, tmp_path, capfd):
    # An unknown key: ansible warns about it and finds no host.
    env = inventory_env(make_env, tmp_path, "all:\n  children:\n    web:\n      hostz:\n        web1:\n", "typo.yaml")
    assert "the inventory names no hosts" in _error(env)
    config.load_environment(str(inventory_env(make_env, tmp_path, INI, "hosts.ini")))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_ansible_is_imported_only_for_an_inventory():
    probe = "import sys; from runbook import config; config.load_environment('local'); print('ansible' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize("case", ["missing", "malformed-ini", "malformed-yaml", "empty", "both"])
def test_a_bad_inventory_ends_preflight_with_exit_2_naming_it(make_env, invoke, tmp_path, case):
    inventory = tmp_path / ("hosts.yaml" if case == "malformed-yaml" else "hosts.ini")
    content = {"malformed-ini": "[web]\nweb1 port\n", "malformed-yaml": "all:\n  hosts:\n    web1: [\n",
               "empty": "# no hosts yet\n", "both": INI}
    if case in content:
        inventory.write_text(textwrap.dedent(content[case]))
    changes = {"inventory": str(inventory)} | ({} if case == "both" else {"hosts": None})
    env = make_env(changes)
    result = invoke("preflight", "--env", str(env))
    assert result.code == 2, result.output
    assert result.output.startswith("runbook: ") and "Traceback" not in result.output
    assert "[WARNING]" not in result.output
    line = next(i for i, text in enumerate(env.read_text().splitlines(), 1) if text.startswith("inventory:"))
    expected = {
        "missing": f"{env}: inventory (line {line}): {inventory}: the inventory file does not exist",
        "malformed-ini": f"{env}: inventory (line {line}): {inventory}: not a valid INI inventory: "
                         "Failed to parse inventory: Expected key=value host variable assignment, got: port",
        "malformed-yaml": f"{env}: inventory (line {line}): {inventory}: not a valid YAML inventory: "
                          "YAML parsing failed",
        "empty": f"{env}: inventory (line {line}): {inventory}: the inventory names no hosts",
        "both": f"{env}: hosts (line ",
    }[case]
    assert expected in result.output
    if case == "both":
        assert "give the hosts either inline or as `inventory`, not both" in result.output
    assert not result.reports.exists() or not any(result.reports.iterdir())
