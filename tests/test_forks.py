"""`ssh.forks` bounds how many hosts are worked on at once (Ansible's `forks`, default 20): fifty hosts do
not open fifty connections at once unless the environment asks for it. The count is of checks running at
the same moment, measured in the checks themselves."""

import threading
import time

import pytest

from runbook import config
from runbook.config import Host
from runbook.config.hosts import FORKS, Ssh
from runbook.errors import ConfigError
from runbook.hosts import connection


class Concurrency:
    """A check that records how many of its calls run at the same moment."""

    def __init__(self) -> None:
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def __call__(self, item):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.05)  # long enough for every free worker to start its own call meanwhile
        with self.lock:
            self.now -= 1
        return item


def hosts(count: int, forks: int | None = None) -> list[Host]:
    ssh = Ssh() if forks is None else Ssh(forks=forks)
    return [Host(name=f"web{i}", spec=f"ssh://web{i}", ssh=ssh) for i in range(count)]


def test_each_works_on_at_most_ssh_forks_hosts_at_once_and_keeps_their_order():
    many, check = hosts(12, forks=3), Concurrency()
    assert connection.each(many, check) == many
    assert check.most == 3


def test_without_ssh_forks_each_works_on_twenty_hosts_at_once():
    check = Concurrency()
    connection.each(hosts(30), check)
    assert FORKS == 20 and check.most == 20


def test_host_and_service_pairs_are_bounded_by_their_hosts_forks():
    pairs, check = [(h, "web") for h in hosts(8, forks=2)], Concurrency()
    assert connection.each(pairs, check) == pairs
    assert check.most == 2


def test_more_forks_than_hosts_work_on_every_host_at_once():
    check = Concurrency()
    connection.each(hosts(4, forks=50), check)
    assert check.most == 4


@pytest.mark.parametrize("forks", [0, 501, "many"])
def test_a_forks_setting_out_of_range_is_refused_naming_ssh_forks(make_env, forks):
    path = make_env({"ssh": {"forks": forks}})
    with pytest.raises(ConfigError) as error:
        config.load_environment(str(path))
    assert "ssh.forks" in str(error.value) and error.value.exit_code == 2, error.value


def test_the_environments_forks_reach_every_host(make_env):
    env = config.load_environment(str(make_env({"ssh": {"forks": 20}})))
    assert {h.ssh.forks for h in env.hosts} == {20}
