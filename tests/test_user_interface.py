"""Step 12's user interface checks in headless Chromium, against the demo's pages deployed by `invoke deploy`
under gunicorn: they pass on the demo, and a console error, a page wider than a phone and a broken
navigation link each fail naming what is wrong. Debian's Chromium headless shell is a prerequisite (a failure under
CI=true)."""

import contextlib
import datetime
import hashlib
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runbook import config
from runbook.checks import security, ui
from runbook.checks.ui import chromium
from runbook.errors import CheckFailed, ConfigError
from runbook.findings import NotConfigured, require

from . import apps, cli, packages, prerequisites

UI = {"ui": {"pages": [{"path": "/login", "login": False}, {"path": "/items"}, {"path": "/files"}]},
      "deadlines": {"browser": 20},
      "watch": {"interval_seconds": 1, "timeout": 0.9, "baseline_seconds": 2, "bake_seconds": 3,
                "error_window_seconds": 2, "latency_window_seconds": 2, "latency_floor_seconds": 2, "error_rate": 0.5}}
"""The demo's pages; the bake's watch, not what this module tests, tolerates a busy shared machine."""
SCENARIOS = ["Step 12 - Pages load without errors", "Step 12 - Forms submit and show their result",
             "Step 12 - Navigation functionality", "Step 12 - Mobile responsiveness"]
PNG = b"\x89PNG\r\n\x1a\n"
GUNICORN = Path(sys.executable).parent / "gunicorn"
STARTUP_SECONDS = 30


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The demo 1.0.0 with its pages, deployed by `invoke deploy` (whose verification runs the browser checks)."""
    prerequisites.require(None if ui.CHROMIUM.is_file() else
                          f"Debian's Chromium headless shell is not installed at {ui.CHROMIUM} "
                          "(apt-get install chromium-headless-shell)")
    folder = tmp_path_factory.mktemp("ui")
    with apps.deployable(folder, UI) as app:
        packages.build(folder, "1.0.0")
        deploy = cli.invoke(folder / "reports", "deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert deploy.code == 0, deploy.output
        yield config.load_environment(str(app.env_file)), deploy


@pytest.fixture(scope="module", autouse=True)
def chromium_stopped():
    """The checks called here share the module's Chromium, as a phase's do; it stops with the module."""
    yield
    ui.LAUNCHED.stop()


def chromium_processes() -> list[int]:
    """The Chromium processes started from this test process (through Playwright's driver and Debian's
    launcher script, which runs /usr/lib/chromium/chromium-headless-shell)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/" + ui.CHROMIUM.name.encode()):
                ancestor = pid
                while ancestor not in ("0", "1", str(os.getpid())):
                    ancestor = Path(f"/proc/{ancestor}/stat").read_text().rsplit(")", 1)[1].split()[1]
                if ancestor == str(os.getpid()):
                    found.append(int(pid))
    return found


@pytest.fixture(autouse=True)
def smoke_password(monkeypatch, secret):
    """The checks run here read the smoke test account's password from the process environment."""
    monkeypatch.setenv("RUNBOOK_TEST_SECRET", secret)


@contextlib.contextmanager
def served_changed(env: config.Environment, file: str, change):
    """The live release serving its `file` (a template or a static file, which the pages read on each request)
    changed by `change`, put back afterwards."""
    path = env.app.current / file
    original, mode = path.read_text(), path.stat().st_mode
    path.chmod(mode | 0o200)
    path.write_text(change(original))
    try:
        yield
    finally:
        path.write_text(original)
        path.chmod(mode)


def failure(checked: ui.Checked) -> str:
    """What the step shows when the check fails: every failed subject with what is wrong."""
    with pytest.raises(CheckFailed) as failed:
        require(checked.findings)
    return str(failed.value)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG) and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_browser_checks_pass_on_the_demo_each_with_png_screenshots_in_the_report_folder(deployed):
    _, deploy = deployed
    for name in SCENARIOS:
        scenario = deploy.scenario(name)
        assert scenario["outcome"] == "passed", scenario
        images = [e for step in scenario["steps"] for e in step["evidence"] if "image" in e]
        assert images, f"{name} shows no screenshot"
        for image in images:
            path = deploy.folder / image["image"]
            width, height = png_size(path)
            assert width > 0 and height > 0 and hashlib.sha256(path.read_bytes()).hexdigest() == image["sha256"]
    phone = [e for step in deploy.scenario(SCENARIOS[3])["steps"] for e in step["evidence"] if "image" in e]
    assert {png_size(deploy.folder / e["image"])[0] for e in phone} == {375}
    assert "screenshots/" in (deploy.folder / "verification.html").read_text()


def test_the_forms_show_the_logged_in_user_and_the_created_item(deployed):
    _, deploy = deployed
    shown = str(deploy.scenario(SCENARIOS[1])["steps"])
    assert "which shows 'admin' in nav" in shown and "which lists it" in shown


def test_the_browser_checks_share_one_chromium_leave_no_context_open_and_start_it_again_when_it_died(deployed):
    env, _ = deployed
    assert all(f.ok for f in ui.pages_load(env).findings)
    browser = ui.LAUNCHED.browser
    assert all(f.ok for f in ui.forms_submit(env).findings)
    assert ui.LAUNCHED.browser is browser and browser.contexts == []
    killed = chromium_processes()
    assert killed
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while set(killed) & set(chromium_processes()):
        assert time.monotonic() < deadline, "Chromium did not die"
        time.sleep(0.1)
    assert all(f.ok for f in ui.phone(env).findings)
    assert ui.LAUNCHED.browser is not browser and ui.LAUNCHED.browser.is_connected()


def test_the_checks_start_from_the_phase_login_and_log_in_through_the_form_again_when_its_cookies_fail(
        deployed, monkeypatch):
    env, _ = deployed
    ui.stop()
    forms = []
    real = chromium.Session.log_in
    monkeypatch.setattr(chromium.Session, "log_in", lambda self, page: forms.append(page) or real(self, page))
    ui.warm(env)
    assert len(forms) == 1 and "demo_session" in {c["name"] for c in ui.LAUNCHED.signed["cookies"]}
    assert all(f.ok for f in ui.navigation(env).findings) and all(f.ok for f in ui.phone(env).findings)
    assert len(forms) == 1  # the navigation's logout ended its own context's session, not the phase's login
    ui.LAUNCHED.signed["cookies"] = [c | {"value": "forged"} if c["name"] == "demo_session" else c
                                     for c in ui.LAUNCHED.signed["cookies"]]
    assert all(f.ok for f in ui.phone(env).findings)
    assert len(forms) == 2 and "forged" not in str(ui.LAUNCHED.signed["cookies"])


def test_a_page_with_a_console_error_fails_naming_the_page(deployed):
    env, _ = deployed
    with served_changed(env, "templates/files.html", lambda t: t + '<img src="/static/missing.png" alt="">\n'):
        message = failure(ui.pages_load(env))
    assert message.startswith("page /files: console error: Failed to load resource") and "404" in message, message
    assert "/items" not in message and "/login" not in message


def test_a_page_wider_than_a_phone_fails_naming_the_overflowing_element(deployed):
    env, _ = deployed
    long_line = '<pre id="long-line">' + "x" * 200 + "</pre>\n"
    with served_changed(env, "templates/items.html", lambda t: t + long_line):
        message = failure(ui.phone(env))
    assert message.startswith("page /items at 375 x 667: ") and "px wide in a 375 px viewport" in message, message
    assert "overflowing pre#long-line (" in message and "page /files" not in message, message


def test_a_page_taller_than_a_screenshot_shows_is_shot_to_its_first_pixels_and_the_title_says_so(deployed):
    env, _ = deployed
    tall = "<p>a row</p>\n" * 1000  # as a page listing every row of a large table
    with served_changed(env, "templates/items.html", lambda t: t + tall):
        checked = ui.pages_load(env)
    assert all(f.ok for f in checked.findings), [f for f in checked.findings if not f.ok]
    shots = {title: png for title, png in checked.screenshots}
    (title,) = [t for t in shots if t.startswith("page /items")]
    found = re.fullmatch(rf"page /items \(its first {ui.SHOT_HEIGHT} of (\d+) px\)", title)
    assert found and int(found[1]) > ui.SHOT_HEIGHT, title
    assert struct.unpack(">II", shots[title][16:24])[1] == ui.SHOT_HEIGHT
    assert "(its first" not in " ".join(t for t in shots if not t.startswith("page /items"))


@pytest.mark.parametrize("file, change, href, problem, browser_seconds", [
    ("templates/layout.html", lambda t: t.replace('href="/files"', 'href="/file-list"'), "/file-list",
     "answered 404", None),
    # the click lands where the link is, as a mouse's would: this one lets it through to the bar under it
    ("static/style.css", lambda t: t + '\nnav a[href="/files"] { pointer-events: none; }\n', "/files",
     "did not lead to a page: Page.expect_navigation: Timeout 2000ms", 2),
    ("static/style.css", lambda t: t + '\nnav a[href="/files"] { display: none; }\n', "/files",
     "is not shown: it takes no room on the page", None),
], ids=["broken", "unclickable", "not-shown"])
def test_a_broken_unclickable_or_hidden_navigation_link_fails_naming_the_link_and_why(
        deployed, file, change, href, problem, browser_seconds):
    env, _ = deployed
    if browser_seconds is not None:  # the click's wait for a page ends at the browser's deadline
        env = env.model_copy(update={"deadlines": env.deadlines.model_copy(update={"browser": browser_seconds})})
    with served_changed(env, file, change):
        message = failure(ui.navigation(env))
    for page in ("/login", "/items", "/files"):
        assert f"link 'Files' ({href}) on {page}: {problem}" in message, message
    assert "link 'Items'" not in message


def test_access_controls_check_that_every_page_needing_a_login_sends_the_browser_to_the_login_page(deployed):
    env, _ = deployed
    pages = {f.subject: f for f in security.refused_without_login(env) if f.subject.startswith("page ")}
    assert set(pages) == {"page GET /items without a login", "page GET /files without a login"}
    assert all(f.ok and f.detail == "sent to the login page (303 to /login)" for f in pages.values()), pages


def test_an_environment_without_pages_is_not_configured_for_the_browser_checks(make_env):
    env = config.load_environment(str(make_env()))
    for check in (ui.pages_load, ui.forms_submit, ui.navigation, ui.phone):
        with pytest.raises(NotConfigured, match=r"no `ui` section in .*not_applicable"):
            check(env)


def _certificate(subject: str, issuer: x509.Certificate | None, issuer_key, key) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def private_ca(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA of its own (its PEM file) and a certificate for `localhost` it signed, with that certificate's key."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(f"{name} CA", None, ca_key, ca_key)
    files = folder / f"{name}-ca.pem", folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(_certificate("localhost", ca, ca_key, key).public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return files


@pytest.fixture(scope="module")
def over_https(deployed, tmp_path_factory):
    """The live release served over https by a gunicorn of its own, with a certificate a private CA signed;
    the environment pointing at it, and that CA's file."""
    env, _ = deployed
    folder = tmp_path_factory.mktemp("tls")
    ca, cert, key = private_ca(folder, "private")
    port = apps.free_port()
    with (folder / "gunicorn.log").open("wb") as log:
        server = subprocess.Popen([str(GUNICORN), "--no-control-socket", "--chdir", str(env.app.current), "--bind",
                                   f"127.0.0.1:{port}", "--certfile", str(cert), "--keyfile", str(key), "app:application"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert server.poll() is None and time.monotonic() < deadline, (folder / "gunicorn.log").read_text()
            with contextlib.suppress(requests.ConnectionError):
                requests.get(f"https://localhost:{port}/health", verify=str(ca), timeout=5)
                break
            time.sleep(0.1)
        endpoints = env.endpoints.model_copy(update={"health": f"https://localhost:{port}/health"})
        yield env.model_copy(update={"endpoints": endpoints}), ca
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_an_https_endpoint_with_a_private_ca_is_checked_with_exactly_its_verified_key_pinned(over_https):
    env, ca = over_https
    pinned = env.model_copy(update={"endpoints": env.endpoints.model_copy(update={"ca_file": ca})})
    assert ui.chromium_args(pinned)[-1].startswith("--ignore-certificate-errors-spki-list=")
    checked = ui.pages_load(pinned)
    assert [f.subject for f in checked.findings if f.ok] == ["page /login", "page /items", "page /files"], checked.findings


def test_an_https_endpoint_is_refused_without_its_ca_or_with_another_ca(over_https, tmp_path):
    env, _ = over_https
    with pytest.raises(CheckFailed, match=r"page /login did not load: .*ERR_CERT_AUTHORITY_INVALID"):
        ui.pages_load(env)
    other, _, _ = private_ca(tmp_path, "other")
    wrong = env.model_copy(update={"endpoints": env.endpoints.model_copy(update={"ca_file": other})})
    with pytest.raises(CheckFailed, match=r"the certificate of localhost:\d+ is not verified by endpoints.ca_file"):
        ui.pages_load(wrong)


def _csrf(page: requests.Response) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert match, page.text
    return match.group(1)


def _logged_in(env: config.Environment, secret: str) -> tuple[requests.Session, str, requests.Response]:
    """A browser-like session logged in through the login page, the app's base URL, and the login's answer."""
    base = ui.base_url(env)
    browser_session = requests.Session()
    form = browser_session.get(f"{base}/login", timeout=10)
    answer = browser_session.post(f"{base}/login", data={"csrf": _csrf(form), "username": "admin", "password": secret},
                                  allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["Location"] == "/items", answer.text
    return browser_session, base, answer


def test_the_login_page_sets_an_httponly_samesite_lax_session_cookie_and_a_forged_one_is_refused(deployed, secret):
    env, _ = deployed
    browser_session, base, answer = _logged_in(env, secret)
    assert re.fullmatch(r"demo_session=[\w=-]+\.[0-9a-f]{64}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax",
                        answer.headers["Set-Cookie"]), answer.headers["Set-Cookie"]
    assert browser_session.get(f"{base}/items", timeout=10).status_code == 200
    token = browser_session.cookies["demo_session"]
    forged = requests.get(f"{base}/items", cookies={"demo_session": token[:-1] + ("1" if token[-1] == "0" else "0")},
                          allow_redirects=False, timeout=10)
    assert forged.status_code == 303 and forged.headers["Location"] == "/login"


def test_a_form_sent_without_its_csrf_token_is_refused_with_403_and_changes_nothing(deployed, secret):
    env, _ = deployed
    browser_session, base, _ = _logged_in(env, secret)
    name = f"no-csrf-{os.getpid()}"
    for token in ("", "0" * 64):
        refused = browser_session.post(f"{base}/items", data={"csrf": token, "name": name}, allow_redirects=False,
                                       timeout=10)
        assert refused.status_code == 403 and "This form has expired" in refused.text
    assert name not in browser_session.get(f"{base}/items", timeout=10).text


def test_a_file_uploaded_through_the_files_page_downloads_from_its_link_with_identical_bytes(deployed, secret):
    env, _ = deployed
    browser_session, base, _ = _logged_in(env, secret)
    data, name = os.urandom(4096), f"page upload {os.getpid()}.bin"
    page = browser_session.get(f"{base}/files", timeout=10)
    sent = browser_session.post(f"{base}/files", data={"csrf": _csrf(page)}, files={"file": (name, data)},
                                allow_redirects=False, timeout=10)
    assert sent.status_code == 303 and sent.headers["Location"] == "/files", sent.text
    listed = browser_session.get(f"{base}/files", timeout=10).text
    link = re.search(rf'<a href="(/files/\d+)" download>{re.escape(name)}</a>', listed)
    assert link, listed
    download = browser_session.get(base + link.group(1), timeout=10)
    assert download.status_code == 200 and download.content == data
    assert requests.get(base + link.group(1), allow_redirects=False, timeout=10).status_code == 303


@pytest.mark.parametrize("section, key, problem", [
    ({"pages": [{"path": "/items"}]}, "ui", "login.page '/login' is not one of the pages ['/items']"),
    ({"pages": [{"path": "/login"}, {"path": "/items"}]}, "ui",
     "the login page /login cannot need a login: set `login: false` on it"),
    ({"pages": [{"path": "items", "login": False}]}, "ui.pages[0].path", "String should match pattern"),
    ({"pages": []}, "ui.pages", "List should have at least 1 item"),
], ids=["login-page-missing", "login-page-needs-login", "path-without-slash", "no-pages"])
def test_a_wrong_ui_section_is_refused_naming_the_key(make_env, section, key, problem):
    with pytest.raises(ConfigError) as refused:
        config.load_environment(str(make_env({"ui": section})))
    assert re.search(rf"test\.yaml: {re.escape(key)} \(line \d+\): {re.escape(problem)}", str(refused.value)), refused.value
