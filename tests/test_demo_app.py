"""End-to-end tests of the demo app (under a real gunicorn) and of its bin/migrate tool.

Every database used here is created on 127.0.0.1:5432 with a unique name and
dropped when the session ends; the app always runs from a copy of demo/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from psycopg import sql

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
GUNICORN = Path(sys.executable).parent / "gunicorn"
SERVER_URL = "postgresql://postgres@127.0.0.1:5432"
APP_VARIABLES = ("DATABASE_URL", "APP_UPLOAD_DIR", "APP_SECRET_KEY", "APP_ADMIN_PASSWORD", "APP_BANNER", "APP_AUDIT_LOG",
                 "APP_AUTH_URL", "APP_AUTH_SECRET", "APP_API_URL", "APP_AMQP_URL", "APP_REDIS_URL")
ADMIN_PASSWORD = "correct horse"
DB_PASSWORD = "never-show-this-password"
HTTP_TIMEOUT = 10
PROCESS_TIMEOUT = 60
STARTUP_SECONDS = 20
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without the app's variables, plus ``overrides``."""
    env = {key: value for key, value in os.environ.items() if key not in APP_VARIABLES}
    return env | overrides


def copy_app(destination: Path) -> Path:
    ignored = shutil.ignore_patterns(".env", "VERSION", "uploads", "__pycache__")
    return Path(shutil.copytree(DEMO_DIR, destination, ignore=ignored))


def run_migrate(app_dir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(app_dir / "bin" / "migrate"), *args],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )


def fetch_one(database_url: str, query: str) -> Any:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return conn.execute(query).fetchone()[0]


def public_tables(database_url: str) -> set[str]:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def json_body(response: requests.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


@contextmanager
def running_gunicorn(app_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """Serve ``app_dir`` with gunicorn and yield its base URL; stop it afterwards."""
    address = f"127.0.0.1:{free_port()}"
    base_url = f"http://{address}"
    log_path = app_dir.parent / f"gunicorn-{uuid.uuid4().hex[:8]}.log"
    command = [str(GUNICORN), "--chdir", str(app_dir), "--bind", address, "--no-control-socket", "app:application"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_serving(base_url, process, log_path)
        yield base_url
    finally:
        stop(process)


def wait_until_serving(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            requests.get(f"{base_url}/health", timeout=HTTP_TIMEOUT)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer within {STARTUP_SECONDS} s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=PROCESS_TIMEOUT)


@pytest.fixture(scope="session")
def make_database() -> Iterator[Callable[[], str]]:
    """A factory of fresh, uniquely named databases, all dropped at the end of the session."""
    names: list[str] = []

    def admin() -> psycopg.Connection:
        return psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True, connect_timeout=5)

    def make() -> str:
        name = f"demo_test_{uuid.uuid4().hex[:12]}"
        with admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        names.append(name)
        return f"{SERVER_URL}/{name}"

    yield make
    with admin() as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="session")
def app_dir(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Path:
    """A migrated copy of demo/ configured only through its VERSION and .env files."""
    directory = copy_app(tmp_path_factory.mktemp("served") / "demo")
    (directory / "VERSION").write_text("1.2.3\n")
    (directory / ".env").write_text(
        "# written by test_demo_app.py\n\n"
        f"DATABASE_URL={database_url}\n"
        "APP_SECRET_KEY='test-secret-key'\n"
        f'APP_ADMIN_PASSWORD="{ADMIN_PASSWORD}"\n'
    )
    result = run_migrate(directory, "up", env=clean_env())
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture(scope="session")
def server(app_dir: Path) -> Iterator[str]:
    with running_gunicorn(app_dir, clean_env()) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def broken_server(app_dir: Path) -> Iterator[str]:
    """The same app with the environment overriding .env: no database listening, no secret key."""
    env = clean_env(
        DATABASE_URL=f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{free_port()}/demo",
        APP_SECRET_KEY="",
    )
    with running_gunicorn(app_dir, env) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def auth(server: str) -> dict[str, str]:
    response = requests.post(
        f"{server}/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=HTTP_TIMEOUT
    )
    return {"Authorization": f"Bearer {json_body(response, 200)['token']}"}


@pytest.fixture
def fresh_database_url(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture
def private_app(tmp_path: Path) -> Path:
    return copy_app(tmp_path / "demo")


Migrate = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def migrate(private_app: Path, fresh_database_url: str) -> Migrate:
    """Run bin/migrate of a private copy of demo/ against a fresh database."""
    env = clean_env(DATABASE_URL=fresh_database_url)
    return lambda *args: run_migrate(private_app, *args, env=env)


def add_migration(app_dir: Path, file_name: str, text: str) -> None:
    (app_dir / "migrations" / file_name).write_text(text)


def test_health_is_200_when_database_answers(server: str) -> None:
    response = requests.get(f"{server}/health", timeout=HTTP_TIMEOUT)
    assert json_body(response, 200) == {"status": "ok"}


def test_health_is_503_without_leaking_password_when_database_is_down(broken_server: str) -> None:
    response = requests.get(f"{broken_server}/health", timeout=HTTP_TIMEOUT)
    body = json_body(response, 503)
    assert body["status"] == "error"
    assert "refused" in body["error"]
    assert DB_PASSWORD not in response.text


def test_status_reports_version_file_and_schema_version(server: str) -> None:
    response = requests.get(f"{server}/api/status", timeout=HTTP_TIMEOUT)
    assert json_body(response, 200) == {"app": "demo", "version": "1.2.3", "schema_version": "0002"}


def test_status_is_503_when_database_is_down(broken_server: str) -> None:
    response = requests.get(f"{broken_server}/api/status", timeout=HTTP_TIMEOUT)
    assert "error" in json_body(response, 503)
    assert DB_PASSWORD not in response.text


def test_login_with_admin_password_returns_token(server: str) -> None:
    response = requests.post(
        f"{server}/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=HTTP_TIMEOUT
    )
    assert json_body(response, 200)["token"]


@pytest.mark.parametrize(("username", "password"), [("admin", "wrong"), ("nobody", ADMIN_PASSWORD)])
def test_login_is_401_for_bad_credentials(server: str, username: str, password: str) -> None:
    response = requests.post(
        f"{server}/api/login", json={"username": username, "password": password}, timeout=HTTP_TIMEOUT
    )
    assert "error" in json_body(response, 401)


def test_login_is_503_without_secret_key(broken_server: str) -> None:
    response = requests.post(
        f"{broken_server}/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=HTTP_TIMEOUT
    )
    assert "APP_SECRET_KEY" in json_body(response, 503)["error"]


def test_item_can_be_created_and_read_back(server: str, auth: dict[str, str]) -> None:
    created = json_body(
        requests.post(f"{server}/api/items", json={"name": "widget"}, headers=auth, timeout=HTTP_TIMEOUT), 201
    )
    assert created["name"] == "widget" and isinstance(created["id"], int)
    response = requests.get(f"{server}/api/items/{created['id']}", headers=auth, timeout=HTTP_TIMEOUT)
    assert json_body(response, 200) == created


def test_missing_item_is_404(server: str, auth: dict[str, str]) -> None:
    response = requests.get(f"{server}/api/items/987654321", headers=auth, timeout=HTTP_TIMEOUT)
    assert "error" in json_body(response, 404)


def test_uploaded_file_downloads_with_identical_bytes(server: str, auth: dict[str, str], app_dir: Path) -> None:
    data = bytes(range(256)) * 4096 + os.urandom(1000)
    response = requests.post(
        f"{server}/api/files", params={"name": "../report.bin"}, data=data, headers=auth, timeout=HTTP_TIMEOUT
    )
    created = json_body(response, 201)
    assert created["name"] == "../report.bin"
    assert created["size"] == len(data)
    assert created["sha256"] == hashlib.sha256(data).hexdigest()
    assert (app_dir / "uploads" / str(created["id"])).read_bytes() == data
    download = requests.get(f"{server}/api/files/{created['id']}", headers=auth, timeout=HTTP_TIMEOUT)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.content == data


def test_missing_file_is_404(server: str, auth: dict[str, str]) -> None:
    response = requests.get(f"{server}/api/files/987654321", headers=auth, timeout=HTTP_TIMEOUT)
    assert "error" in json_body(response, 404)


def test_upload_over_10_mib_is_413(server: str, auth: dict[str, str]) -> None:
    response = requests.post(
        f"{server}/api/files", params={"name": "big"}, data=b"x" * (10 * MIB + 1), headers=auth, timeout=HTTP_TIMEOUT
    )
    assert "error" in json_body(response, 413)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/items"), ("GET", "/api/items/1"), ("POST", "/api/files?name=a"), ("GET", "/api/files/1"),
     ("POST", "/api/jobs"), ("GET", "/api/jobs/1"), ("PUT", "/api/cache/a"), ("GET", "/api/cache/a")],
)
def test_protected_endpoints_are_401_without_valid_token(
    server: str, auth: dict[str, str], method: str, path: str
) -> None:
    tampered = auth["Authorization"][:-1] + ("0" if auth["Authorization"][-1] != "0" else "1")
    for authorization in (None, tampered, "Basic YWRtaW46eA==", "Bearer x.\u00e9"):
        headers = {"Authorization": authorization} if authorization else {}
        response = requests.request(
            method, f"{server}{path}", json={"name": "x"}, headers=headers, timeout=HTTP_TIMEOUT
        )
        assert "error" in json_body(response, 401)


@pytest.mark.parametrize(
    ("method", "path", "body", "variable"),
    [("POST", "/api/jobs", {"text": "x"}, "APP_AMQP_URL"), ("GET", "/api/cache/a", None, "APP_REDIS_URL"),
     ("GET", "/api/rates", None, "APP_API_URL")],
    ids=["jobs", "cache", "rates"],
)
def test_dependency_endpoints_are_503_naming_the_variable_when_it_is_not_set(
    server: str, auth: dict[str, str], method: str, path: str, body: dict | None, variable: str
) -> None:
    response = requests.request(method, f"{server}{path}", json=body, headers=auth, timeout=HTTP_TIMEOUT)
    assert json_body(response, 503) == {"error": f"{variable} is not configured"}


def test_logins_and_changes_are_audited_with_their_request_id(app_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "audit" / "audit.log"
    with running_gunicorn(app_dir, clean_env(APP_AUDIT_LOG=str(log))) as base:
        def post(path: str, request_id: str, **kwargs: Any) -> requests.Response:
            return requests.post(f"{base}{path}", headers={"X-Request-Id": request_id, **kwargs.pop("headers", {})},
                                 timeout=HTTP_TIMEOUT, **kwargs)

        assert post("/api/login", "r-1", json={"username": "admin", "password": "wrong"}).status_code == 401
        token = json_body(post("/api/login", "r-2", json={"username": "admin", "password": ADMIN_PASSWORD}), 200)
        auth = {"Authorization": f"Bearer {token['token']}"}
        item = json_body(post("/api/items", "r-3", json={"name": "audited"}, headers=auth), 201)
        uploaded = json_body(post("/api/files?name=a.bin", "r-4", data=b"x", headers=auth), 201)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["request_id"], e["actor"], e["action"], e["subject"]) for e in events] == [
        ("r-1", "admin", "login.refused", "user admin"), ("r-2", "admin", "login", "user admin"),
        ("r-3", "admin", "item.create", f"item {item['id']}"), ("r-4", "admin", "file.upload", f"file {uploaded['id']}"),
    ]
    assert all(e["time"].endswith("Z") for e in events)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/no/such/path", None, 404),
        ("DELETE", "/health", None, 405),
        ("GET", "/api/login", None, 405),
        ("POST", "/api/login", b"{not json", 400),
        ("POST", "/api/login", b"[1, 2]", 400),
    ],
    ids=["unknown-path-404", "wrong-method-405", "login-get-405", "malformed-json-400", "json-not-object-400"],
)
def test_request_errors_are_json_with_matching_status(
    server: str, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = requests.request(method, f"{server}{path}", data=body, timeout=HTTP_TIMEOUT)
    assert "error" in json_body(response, status)
    assert "Traceback" not in response.text


def test_malformed_item_json_is_400(server: str, auth: dict[str, str]) -> None:
    response = requests.post(f"{server}/api/items", data=b"{", headers=auth, timeout=HTTP_TIMEOUT)
    assert "error" in json_body(response, 400)


def migrate_status(migrate: Migrate) -> dict[str, Any]:
    result = migrate("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_migrate_up_status_down_round_trip(migrate: Migrate, fresh_database_url: str) -> None:
    assert migrate_status(migrate) == {"current": None, "applied": [], "pending": ["0001", "0002"]}

    assert migrate("up").returncode == 0
    assert migrate_status(migrate) == {"current": "0002", "applied": ["0001", "0002"], "pending": []}
    assert {"users", "items", "files", "jobs", "schema_migrations"} <= public_tables(fresh_database_url)

    assert migrate("down").returncode == 0
    assert migrate_status(migrate) == {"current": "0001", "applied": ["0001"], "pending": ["0002"]}
    assert "jobs" not in public_tables(fresh_database_url)
    assert migrate("down").returncode == 0
    assert migrate_status(migrate) == {"current": None, "applied": [], "pending": ["0001", "0002"]}
    assert public_tables(fresh_database_url) == {"schema_migrations"}


def test_up_to_stops_at_version_and_down_to_zero_reverts_all(
    private_app: Path, migrate: Migrate, fresh_database_url: str
) -> None:
    extra = "-- migrate:up\nCREATE TABLE extra (id int);\n-- migrate:down\nDROP TABLE extra;\n"
    add_migration(private_app, "0003_extra.sql", extra)

    assert migrate("up", "--to", "0001").returncode == 0
    assert migrate_status(migrate)["pending"] == ["0002", "0003"]
    assert migrate("up").returncode == 0
    assert "extra" in public_tables(fresh_database_url)

    assert migrate("down", "--to", "0").returncode == 0
    assert migrate_status(migrate)["applied"] == []
    assert public_tables(fresh_database_url) == {"schema_migrations"}


def test_migration_failing_halfway_leaves_nothing_behind(
    private_app: Path, migrate: Migrate, fresh_database_url: str
) -> None:
    add_migration(
        private_app,
        "0003_broken.sql",
        "-- migrate:up\nCREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n"
        "-- migrate:down\nDROP TABLE half_done;\n",
    )

    result = migrate("up")

    assert result.returncode == 1
    assert "0003_broken" in result.stderr and "no_such_table" in result.stderr
    assert "Traceback" not in result.stderr
    assert "half_done" not in public_tables(fresh_database_url)
    applied = fetch_one(fresh_database_url, "SELECT array_agg(version ORDER BY version) FROM schema_migrations")
    assert applied == ["0001", "0002"]


@pytest.mark.parametrize(
    "down_part", ["", "-- migrate:down\n-- nothing to undo\n"], ids=["no-down-section", "empty-down-section"]
)
def test_down_is_refused_for_migration_without_down_part(
    private_app: Path, migrate: Migrate, fresh_database_url: str, down_part: str
) -> None:
    add_migration(private_app, "0003_one_way.sql", f"-- migrate:up\nCREATE TABLE one_way (id int);\n{down_part}")
    assert migrate("up").returncode == 0

    result = migrate("down", "--to", "0")

    assert result.returncode == 1
    assert "0003_one_way" in result.stderr
    assert migrate_status(migrate)["applied"] == ["0001", "0002", "0003"]
    assert {"one_way", "users"} <= public_tables(fresh_database_url)


def test_migrate_without_database_url_exits_2(private_app: Path) -> None:
    result = run_migrate(private_app, "status", env=clean_env())
    assert result.returncode == 2
    assert result.stderr.strip() == "migrate: error: DATABASE_URL is not set"
