"""Chromium for the user interface checks: Debian's headless shell (`/usr/bin/chromium-headless-shell`, the build
Playwright itself runs for headless checks: the same engine as `/usr/bin/chromium` without the browser's window
machinery, which made every page load, click and screenshot slower, 6.2 s against 3.7 s for the demo's checks),
driven by Playwright, a fresh profile each launch, every wait (its start, a page's load, a form's answer, a click) ending at
`deadlines.browser`.

The checks of one phase share one Chromium (`LAUNCHED`, started by the first or ahead by `warm`, stopped as
the phase's session ends): starting Playwright's driver and the browser costs 0.35 s each time. A check works
only in browser contexts of its own (cookies, storage and cache apart), closed when it ends, so no check sees
what another left; a context that needs a login starts from the cookies of the phase's one login through
the form (`Launched.signed`, got by `warm` or the first check), which spares each check 0.15 s.

An https endpoint whose certificate a private CA signed (`endpoints.ca_file`): Chromium reads no CA file, and
certificate errors are never ignored at large. The runbook itself verifies the endpoint's certificate
against that CA and the host name, then starts Chromium with `--ignore-certificate-errors-spki-list` set to
exactly that certificate's key.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Response, StorageState, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from runbook import ROOT
from runbook.checks import smoke, tls
from runbook.config import Environment, TlsEndpoint
from runbook.config.ui import Ui
from runbook.errors import CheckFailed
from runbook.findings import Finding, NotConfigured
from runbook.secrets import expand

CHROMIUM = Path("/usr/bin/chromium-headless-shell")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
"""Chromium's switches (Playwright gives every launch a fresh, temporary user-data dir of its own)."""


@dataclass
class Checked:
    """What a check found, and the screenshots (title, PNG) it shows as evidence."""

    findings: list[Finding] = field(default_factory=list)
    screenshots: list[tuple[str, bytes]] = field(default_factory=list)


def section(env: Environment) -> Ui:
    if env.ui is None:
        raise NotConfigured(f"no `ui` section in {env.source}: the app's pages are not named, so there is nothing "
                            "to check in a browser (declare these scenarios under `not_applicable` if it has none)")
    return env.ui


def base_url(env: Environment) -> str:
    """`https://demo.example.com` for the health endpoint `https://demo.example.com/health`."""
    parts = urlsplit(env.endpoints.health)
    return f"{parts.scheme}://{parts.netloc}"


def chromium_args(env: Environment) -> list[str]:
    """Chromium's switches; with `endpoints.ca_file` and an https endpoint, the pin of its verified key too."""
    parts, ca_file = urlsplit(base_url(env)), env.endpoints.ca_file
    if parts.scheme != "https" or ca_file is None:
        return list(ARGS)
    endpoint = TlsEndpoint(host=parts.hostname, port=parts.port or 443, ca_file=ROOT / ca_file)
    try:
        pin = tls.key_pin(endpoint, env.deadlines.browser)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"the certificate of {parts.netloc} is not verified by endpoints.ca_file {ca_file}: {e}") from None
    return [*ARGS, f"--ignore-certificate-errors-spki-list={pin}"]


class Launched:
    """The Chromium the checks of a session share: started when first asked for, started again when it died
    or is asked for with other switches."""

    def __init__(self) -> None:
        self.playwright: Playwright | None = None
        self.browser: Browser | None = None
        self.args: list[str] = []
        self.signed: StorageState | None = None
        """The cookies and storage of the smoke test user's login through the form in this browser."""

    def browser_for(self, args: list[str], timeout_ms: float) -> Browser:
        if self.browser is not None and (args != self.args or not self._answers()):
            self.stop()
        if self.browser is None:
            self.playwright = sync_playwright().start()
            try:
                self.browser = self.playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                               args=args, timeout=timeout_ms)
            except PlaywrightError as e:
                self.stop()
                raise CheckFailed(f"Chromium ({CHROMIUM}) did not start: {first_line(e)}") from None
            self.args = args
        return self.browser

    def _answers(self) -> bool:
        """Whether the browser still answers: a round trip, since the sync API learns of its death only when
        it is called."""
        try:
            self.browser.new_browser_cdp_session().detach()
        except PlaywrightError:
            return False
        return True

    def stop(self) -> None:
        browser, playwright, self.browser, self.playwright, self.signed = self.browser, self.playwright, None, None, None
        if browser is not None:
            with contextlib.suppress(PlaywrightError):
                browser.close()
        if playwright is not None:
            playwright.stop()


LAUNCHED = Launched()


class Session:
    """One check's use of Chromium: pages opened in fresh contexts, console errors kept per page."""

    def __init__(self, env: Environment, launched: Launched) -> None:
        self.env, self.ui, self.launched, self.browser = env, section(env), launched, launched.browser
        self.base = base_url(env)
        self.timeout_ms = env.deadlines.browser * 1000
        self.contexts: list[BrowserContext] = []

    def context(self, phone: bool = False, state: StorageState | None = None) -> BrowserContext:
        viewport = {"width": self.ui.phone.width, "height": self.ui.phone.height} if phone else None
        context = self.browser.new_context(viewport=viewport, accept_downloads=False, storage_state=state)
        self.contexts.append(context)
        context.set_default_timeout(self.timeout_ms)
        context.set_default_navigation_timeout(self.timeout_ms)
        return context

    def page(self, context: BrowserContext) -> tuple[Page, list[str]]:
        """A new page, and the list its console errors and uncaught exceptions are appended to."""
        page, errors = context.new_page(), []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught {e}"))
        return page, errors

    def url(self, where: str) -> str:
        return urljoin(self.base + "/", where.lstrip("/"))

    def open(self, page: Page, where: str) -> Response:
        try:
            response = page.goto(self.url(where), wait_until="load")
        except PlaywrightError as e:
            raise CheckFailed(f"page {where} did not load: {first_line(e)}") from None
        if response is None:
            raise CheckFailed(f"page {where} gave no answer")
        return response

    def submit(self, page: Page, form: str, what: str) -> Response | None:
        """Send `form` with its submit button, clicked where it is (`checks._follow`), and wait for the page it
        leads to."""
        try:
            with page.expect_navigation(wait_until="load") as answer:
                page.locator(form).locator("[type=submit]").first.click(force=True)
            return answer.value
        except PlaywrightError as e:
            raise CheckFailed(f"{what}: the form {form} did not lead to a page: {first_line(e)}") from None

    def fill(self, page: Page, form: str, selector: str, value: str) -> None:
        try:
            page.locator(form).locator(selector).fill(value)
        except PlaywrightError as e:
            raise CheckFailed(f"{selector} of the form {form} on {path(page.url)}: {first_line(e)}") from None

    def log_in(self, page: Page) -> Response | None:
        """Log in with the smoke test account through the login form."""
        smoke_account, login = smoke.account(self.env), self.ui.login
        self.open(page, login.page)
        self.fill(page, login.form, login.username, smoke_account.username)
        self.fill(page, login.form, login.password, expand(smoke_account.password))
        return self.submit(page, login.form, f"logging in on {login.page}")

    def signed_in(self, phone: bool = False) -> tuple[Page, list[str]]:
        """A page of a fresh context in which the smoke test user is logged in: from the cookies of the phase's
        login where they still open the first page that needs one, else through the login form (whose
        cookies the next checks start from)."""
        state = self.launched.signed
        page, errors = self.page(self.context(phone, state))
        if state is not None and self.ui.protected:
            self.open(page, self.ui.protected[0])
            if path(page.url) != self.ui.login.page:
                return page, errors
        answer = self.log_in(page)
        if path(page.url) == self.ui.login.page:
            raise CheckFailed(f"logging in as {smoke.account(self.env).username} on {self.ui.login.page} did not "
                              f"leave the login page (it answered {answer and answer.status})")
        self.launched.signed = page.context.storage_state()
        return page, errors


@contextlib.contextmanager
def session(env: Environment) -> Iterator[Session]:
    """The shared Chromium for one check, the contexts it opened closed afterwards; CheckFailed when it cannot
    start."""
    section(env)  # NotConfigured before anything starts
    if not CHROMIUM.is_file():
        raise CheckFailed(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium-headless-shell)")
    LAUNCHED.browser_for(chromium_args(env), env.deadlines.browser * 1000)
    used = Session(env, LAUNCHED)
    try:
        yield used
    finally:
        for context in used.contexts:
            with contextlib.suppress(PlaywrightError):
                context.close()


def warm(env: Environment) -> None:
    """Start the phase's Chromium and log the smoke test user in, ahead of the checks that need them."""
    with session(env) as s:
        s.signed_in()


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def path(url: str) -> str:
    return urlsplit(url).path or "/"


SHOT_HEIGHT = 4000
"""A screenshot shows at most this many CSS pixels of a page's height: a page listing every row of a large
table would otherwise give a PNG, and memory, growing with the data (about 10 MB a shot at 300,000 rows)."""


def shot(page: Page, title: str) -> tuple[str, bytes]:
    """A screenshot of the whole page, or of its first `SHOT_HEIGHT` pixels (the title says so), as the
    evidence of a check."""
    width, height = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    if height <= SHOT_HEIGHT:
        return title, page.screenshot(full_page=True, type="png")
    clip = {"x": 0, "y": 0, "width": width, "height": SHOT_HEIGHT}
    return f"{title} (its first {SHOT_HEIGHT} of {height} px)", page.screenshot(full_page=True, clip=clip, type="png")
