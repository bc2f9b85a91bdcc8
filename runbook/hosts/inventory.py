"""Hosts from an Ansible inventory (INI or YAML), read by ansible-core's own parser.

    >>> read(Path("environments/prod.inventory.ini"), default_user="deploy")[0]
    {'name': 'app1', 'spec': 'ssh://deploy@app1.prod.example.com:22', 'roles': ['app', 'migrate', 'web'],
     'vars': {'ansible_host': 'app1.prod.example.com'}}

A host's roles are the groups it belongs to, parent groups included (`all` and `ungrouped` are none);
its variables are its groups' and its own, merged as Ansible merges them (`group_vars/` and `host_vars/`
beside the inventory included). ansible is imported only here, when an environment has an inventory.
"""

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from runbook.config import yamlfile
from runbook.errors import ConfigError

NOT_ROLES = frozenset({"all", "ungrouped"})
YAML_SUFFIXES = (".yaml", ".yml")


def read(path: Path, default_user: str) -> list[dict[str, Any]]:
    """Each host of the inventory as `config.Host` takes it; `ConfigError` naming the file and the problem.

    `default_user` logs in where the inventory gives no `ansible_user`.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: the inventory file does not exist")
    if path.suffix in YAML_SUFFIXES:
        yamlfile.check(path)
    # ansible tells what it cannot parse, and more, as warnings on the terminal: none of it reaches the
    # user's (the reason a file is refused is asked of its format's plugin below). Imported in here,
    # ansible also leaves the process's own stdout and stderr as they are.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from ansible.constants import INTERNAL_STATIC_VARS
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager

        loader = DataLoader()
        try:
            parsed = InventoryManager(loader=loader, sources=[str(path.resolve())])
            found = parsed.get_hosts()
            if not found:
                raise ConfigError(f"{path}: {_refusal(loader, path)}")
            variables = VariableManager(loader=loader, inventory=parsed)
            resolved = {h.name: variables.get_vars(host=h, include_hostvars=False) for h in found}
        except AnsibleError as e:
            raise ConfigError(f"{path}: {e}") from None
    hosts = []
    for host in found:
        own = {k: v for k, v in resolved[host.name].items() if k not in INTERNAL_STATIC_VARS}
        roles = sorted(g.name for g in host.get_groups() if g.name not in NOT_ROLES)
        hosts.append(_host(path, host.name, roles, _plain(own), default_user))
    return hosts


def _refusal(loader: Any, path: Path) -> str:
    """Why the inventory gave no hosts: the error of the plugin for its format (InventoryManager only
    warns about it), else that it names none."""
    from ansible.errors import AnsibleError
    from ansible.inventory.data import InventoryData
    from ansible.plugins.loader import inventory_loader

    kind = "yaml" if path.suffix in YAML_SUFFIXES else "ini"
    try:
        inventory_loader.get(kind).parse(InventoryData(), loader, str(path.resolve()), cache=False)
    except AnsibleError as e:
        return f"not a valid {kind.upper()} inventory: {e}"
    return "the inventory names no hosts"


def _plain(variables: dict[str, Any]) -> dict[str, Any]:
    """The variables as plain JSON data, without ansible's tagged types."""
    return json.loads(json.dumps(variables, default=str))


def _host(path: Path, name: str, roles: list[str], variables: dict[str, Any], default_user: str) -> dict[str, Any]:
    connection = variables.get("ansible_connection", "ssh")
    if connection == "local":
        spec = "local://"
    elif connection == "ssh":
        address = str(variables.get("ansible_host", name))
        if ":" in address:
            address = f"[{address}]"
        spec = f"ssh://{variables.get('ansible_user') or default_user}@{address}:{variables.get('ansible_port', 22)}"
    else:
        raise ConfigError(f"{path}: host {name}: ansible_connection {connection!r} is not supported (ssh or local)")
    return {"name": name, "spec": spec, "roles": roles, "vars": variables}
