"""Benchmark: `invoke preflight` against a plain pytest-testinfra file doing the same essential checks on the
same environment (host resources, database, cache, queue, HTTP health, file modes, the package checksum),
interleaved; medians, the ratio last.

    python bench/preflight_vs_testinfra.py [--env local] [--version 1.0.0] [--runs 5]

The environment must be a local one that is up (`invoke local.up`) with the version's package built
(`invoke package --version V`). The plain file is written to a temporary folder and run with
`pytest --hosts=local://`; it reads the same environment file for its addresses.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, as_installed, must  # noqa: E402

PLAIN = '''
import hashlib, os, socket, tarfile
from pathlib import Path

import psycopg, requests
from runbook import config

ENV = config.load_environment({env!r})
DATABASE_URL = {dburl!r}
PACKAGE = ENV.app.package_dir / "{app}-{version}.tar.gz"


def test_host_resources(host):
    assert int(host.check_output("nproc")) >= ENV.thresholds.min_cpus
    free = os.statvfs("/")
    assert free.f_bavail / free.f_blocks * 100 >= ENV.thresholds.disk_free_percent
    kb = int(host.check_output("awk '/MemAvailable/ {{print $2}}' /proc/meminfo"))
    assert kb / 1024 >= ENV.thresholds.min_memory_mb


def test_database():
    with psycopg.connect(DATABASE_URL, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_cache():
    with socket.create_connection(("127.0.0.1", 6379), timeout=5) as s:
        s.sendall(b"PING\\r\\n")
        assert s.recv(16).startswith(b"+PONG")


def test_queue():
    with socket.create_connection(("127.0.0.1", 5672), timeout=5) as s:
        s.sendall(b"AMQP\\x00\\x00\\x09\\x01")
        assert s.recv(8)


def test_http_health():
    response = requests.get(ENV.endpoints.health, verify=str(ENV.endpoints.ca_file), timeout=5)
    assert response.status_code == 200


def test_file_modes(host):
    for f in ENV.files:
        assert host.file(str(f.path)).mode == int(f.mode, 8)


def test_package_checksum():
    with tarfile.open(PACKAGE) as tar:
        members = {{m.name.split("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}}
        manifest = tar.extractfile(members.pop("MANIFEST.sha256")).read().decode()
        for line in manifest.splitlines():
            digest, name = line.split(maxsplit=1)
            assert hashlib.file_digest(tar.extractfile(members[name]), "sha256").hexdigest() == digest, name
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    from runbook import config
    from runbook.database import queries
    from runbook.environments import open_environment

    env = open_environment(options.env, start_local=False)
    as_installed()
    with tempfile.TemporaryDirectory(prefix="bench-preflight-") as tmp:
        plain, ini = Path(tmp) / "test_plain_preflight.py", Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        plain.write_text(PLAIN.format(env=str(config.environment_path(options.env)), app=env.app.name,
                                      version=options.version, dburl=queries.url(env)))
        sides = {
            "invoke preflight": ([sys.executable, "-m", "invoke", "preflight", "--env", options.env,
                                  "--version", options.version], ROOT),
            "plain pytest-testinfra": ([sys.executable, "-m", "pytest", str(plain), "--hosts=local://", "-q",
                                        "-p", "no:cacheprovider", "-p", "no:runbook", "--noconftest",
                                        "-c", str(ini), "--rootdir", tmp], ROOT),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(options.runs):
            for name, (argv, cwd) in sides.items():
                times[name].append(must(argv, cwd, timeout=600))
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})")
    ratio = statistics.median(times["invoke preflight"]) / statistics.median(times["plain pytest-testinfra"])
    print(f"ratio preflight / plain: {ratio:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
