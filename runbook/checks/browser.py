"""Step 12's user interface checks, in headless Chromium (Debian's, driven by Playwright) against the pages
the environment's `ui` section names, at the origin of `endpoints.health`.

Each check returns its findings and the screenshots (PNG) it took as evidence. Every wait of the browser
(its start, a page's load, a form's answer, a click) ends at `deadlines.browser`. An endpoint over https
whose certificate a private CA signed (`ui.ca_file`): the runbook itself verifies the endpoint's
certificate against that CA and the host name, then tells Chromium to accept exactly that certificate's
key (`--ignore-certificate-errors-spki-list`), never any certificate error at large.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from urllib.parse import urljoin, urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Response, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from runbook.checks import smoke, tls
from runbook.config import Environment, TlsEndpoint
from runbook.config.ui import Ui
from runbook.errors import CheckFailed
from runbook.findings import Finding, NotConfigured
from runbook.secrets import expand

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
"""Chromium's switches (Playwright gives every launch a fresh, temporary user-data dir of its own)."""
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= innerWidth) return [];
  const clipped = el => { for (let p = el.parentElement; p; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
  const wide = [...document.body.querySelectorAll('*')].filter(el => {
    const box = el.getBoundingClientRect();
    const spills = getComputedStyle(el).overflowX === 'visible' && box.left + el.scrollWidth > width + 1;
    return (box.width || box.height) && (box.right > width + 1 || box.left < -1 || spills) && !clipped(el);
  });
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + [...el.classList].map(c => '.' + c).join('');
  return wide.filter(el => !wide.some(o => o !== el && el.contains(o))).slice(0, 5)
    .map(el => `${name(el)} (${Math.round(el.getBoundingClientRect().left)} to `
      + `${Math.round(el.getBoundingClientRect().left + Math.max(el.scrollWidth, el.getBoundingClientRect().width))} px)`);
}"""
"""The innermost elements (at most 5) that reach beyond the viewport's width, when the page scrolls sideways."""


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


def chromium_args(env: Environment, ui: Ui) -> list[str]:
    """Chromium's switches; with `ui.ca_file` and an https endpoint, the pin of its verified key too."""
    parts = urlsplit(base_url(env))
    if parts.scheme != "https" or ui.ca_file is None:
        return list(ARGS)
    endpoint = TlsEndpoint(host=parts.hostname, port=parts.port or 443, ca_file=ui.ca_file)
    try:
        pin = tls.key_pin(endpoint, env.deadlines.browser)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"the certificate of {parts.netloc} is not verified by ui.ca_file {ui.ca_file}: {e}") from None
    return [*ARGS, f"--ignore-certificate-errors-spki-list={pin}"]


class Session:
    """One Chromium for a check: pages opened in fresh contexts, console errors kept per page."""

    def __init__(self, env: Environment, browser: Browser) -> None:
        self.env, self.ui, self.browser = env, section(env), browser
        self.base = base_url(env)
        self.timeout_ms = env.deadlines.browser * 1000

    def context(self, phone: bool = False) -> BrowserContext:
        viewport = {"width": self.ui.phone.width, "height": self.ui.phone.height} if phone else None
        context = self.browser.new_context(viewport=viewport, accept_downloads=False)
        context.set_default_timeout(self.timeout_ms)
        context.set_default_navigation_timeout(self.timeout_ms)
        return context

    def page(self, context: BrowserContext) -> tuple[Page, list[str]]:
        """A new page, and the list its console errors and uncaught exceptions are appended to."""
        page, errors = context.new_page(), []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught {e}"))
        return page, errors

    def url(self, path: str) -> str:
        return urljoin(self.base + "/", path.lstrip("/"))

    def open(self, page: Page, path: str) -> Response:
        try:
            response = page.goto(self.url(path), wait_until="load")
        except PlaywrightError as e:
            raise CheckFailed(f"page {path} did not load: {_first_line(e)}") from None
        if response is None:
            raise CheckFailed(f"page {path} gave no answer")
        return response

    def submit(self, page: Page, form: str, what: str) -> Response | None:
        """Send `form` with its submit button and wait for the page it leads to."""
        try:
            with page.expect_navigation(wait_until="load") as answer:
                page.locator(form).locator("[type=submit]").first.click()
            return answer.value
        except PlaywrightError as e:
            raise CheckFailed(f"{what}: the form {form} did not lead to a page: {_first_line(e)}") from None

    def log_in(self, page: Page) -> Response | None:
        """Log in with the smoke test account through the login form."""
        smoke_account, login = smoke.account(self.env), self.ui.login
        self.open(page, login.page)
        try:
            page.locator(login.form).locator(login.username).fill(smoke_account.username)
            page.locator(login.form).locator(login.password).fill(expand(smoke_account.password))
        except PlaywrightError as e:
            raise CheckFailed(f"the login form {login.form} on {login.page}: {_first_line(e)}") from None
        return self.submit(page, login.form, f"logging in on {login.page}")

    def signed_in(self, phone: bool = False) -> tuple[Page, list[str]]:
        page, errors = self.page(self.context(phone))
        answer = self.log_in(page)
        if _path(page.url) == self.ui.login.page:
            raise CheckFailed(f"logging in as {smoke.account(self.env).username} on {self.ui.login.page} did not "
                              f"leave the login page (it answered {answer and answer.status})")
        return page, errors


@contextlib.contextmanager
def session(env: Environment) -> Iterator[Session]:
    """Chromium for one check, closed afterwards; CheckFailed when it cannot start."""
    ui = section(env)
    if not CHROMIUM.is_file():
        raise CheckFailed(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    args = chromium_args(env, ui)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args,
                                                 timeout=env.deadlines.browser * 1000)
        except PlaywrightError as e:
            raise CheckFailed(f"Chromium ({CHROMIUM}) did not start: {_first_line(e)}") from None
        try:
            yield Session(env, browser)
        finally:
            browser.close()


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _shot(page: Page, title: str) -> tuple[str, bytes]:
    return title, page.screenshot(full_page=True, type="png")


def _loaded(session_: Session, page: Page, errors: list[str], path: str, checked: Checked) -> None:
    errors.clear()
    response = session_.open(page, path)
    problems = [] if response.status == 200 else [f"answered {response.status}"]
    if _path(page.url) != path:
        problems.append(f"ended at {_path(page.url)}")
    problems += [f"console error: {e}" for e in errors]
    checked.findings.append(Finding(f"page {path}", not problems, "; ".join(problems)
                                    or f"loaded with 200 and no console error: {page.title()!r}"))
    checked.screenshots.append(_shot(page, f"page {path}"))


def pages_load(env: Environment) -> Checked:
    """Every page loads with 200 and no console error: those without a login first, then the others logged in."""
    checked = Checked()
    with session(env) as s:
        page, errors = s.page(s.context())
        for p in [p for p in s.ui.pages if not p.login]:
            _loaded(s, page, errors, p.path, checked)
        page, errors = s.signed_in()
        for p in [p for p in s.ui.pages if p.login]:
            _loaded(s, page, errors, p.path, checked)
    return checked


def forms_submit(env: Environment) -> Checked:
    """The login form logs the smoke test user in (the next page shows the user), and the create form's entry
    shows on the page it leads to."""
    section(env)
    checked, username = Checked(), smoke.account(env).username
    with session(env) as s:
        page, _ = s.page(s.context())
        answer = s.log_in(page)
        shows = page.locator(s.ui.login.shows).inner_text() if _path(page.url) != s.ui.login.page else ""
        ok = bool(answer) and answer.status == 200 and username in shows
        checked.findings.append(Finding(
            f"login form on {s.ui.login.page}", ok,
            f"led to {_path(page.url)} ({answer and answer.status}), " +
            (f"which shows {username!r} in {s.ui.login.shows}" if ok else f"{s.ui.login.shows} does not show {username!r}")))
        checked.screenshots.append(_shot(page, "after logging in"))
        if not ok:
            return checked
        create, name = s.ui.create, f"runbook-ui-{token_hex(4)}"
        s.open(page, create.page)
        page.locator(create.form).locator(create.field).fill(name)
        answer = s.submit(page, create.form, f"creating {name!r} on {create.page}")
        listed = page.locator(create.shows)
        ok = answer is not None and answer.status == 200 and listed.count() > 0 and name in listed.inner_text()
        checked.findings.append(Finding(
            f"create form on {create.page}", ok,
            f"sent {name!r}, led to {_path(page.url)} ({answer and answer.status}), which "
            + ("lists it" if ok else f"does not list it in {create.shows}")))
        checked.screenshots.append(_shot(page, f"after creating {name}"))
    return checked


def _links(page: Page, selector: str) -> list[tuple[str, str]]:
    """(text, path) of each navigation link on the page, in order."""
    found = page.locator(selector).evaluate_all("links => links.map(a => [a.textContent.trim(), a.href])")
    return [(text, _path(href)) for text, href in found]


def _followed(s: Session, page: Page, errors: list[str], start: str, index: int) -> tuple[str, str, list[str]]:
    """Open `start`, click its navigation link number `index`: the link's text, where it led, what is wrong."""
    s.open(page, start)
    link = page.locator(s.ui.navigation).nth(index)
    text, href = link.inner_text().strip(), _path(link.evaluate("a => a.href"))
    errors.clear()
    try:
        with page.expect_navigation(wait_until="load") as answer:
            link.click()
    except PlaywrightError as e:
        return text, href, [f"did not lead to a page: {_first_line(e)}"]
    status, reached = answer.value and answer.value.status, _path(page.url)
    pages = [p.path for p in s.ui.pages]
    problems = [] if status == 200 else [f"answered {status}"]
    if reached != href and (href in pages or reached not in pages):
        problems.append(f"ended at {reached}, not at a page of the app")
    elif reached == s.ui.login.page != href:
        problems.append(f"sent a logged-in user to the login page {reached}")
    return text, href, problems + [f"console error: {e}" for e in errors]


def navigation(env: Environment) -> Checked:
    """On every page, logged in, each navigation link reaches its page (200, no console error); the logout
    link, followed last, ends at the login page and ends the session."""
    checked = Checked()
    with session(env) as s:
        page, errors = s.signed_in()
        for p in s.ui.pages:
            s.open(page, p.path)
            links = _links(page, s.ui.navigation)
            checked.screenshots.append(_shot(page, f"navigation of {p.path}"))
            if not links:
                checked.findings.append(Finding(f"page {p.path}", False, f"has no navigation link ({s.ui.navigation})"))
            for index, (_, href) in enumerate(links):
                if href == s.ui.logout:
                    continue
                text, href, problems = _followed(s, page, errors, p.path, index)
                checked.findings.append(Finding(f"link {text!r} ({href}) on {p.path}", not problems,
                                                "; ".join(problems) or f"reached {_path(page.url)}"))
        if s.ui.logout:
            checked.findings.append(_logs_out(s, page, errors))
    return checked


def _logs_out(s: Session, page: Page, errors: list[str]) -> Finding:
    last = s.ui.pages[-1].path
    s.open(page, last)
    index = next((i for i, (_, href) in enumerate(_links(page, s.ui.navigation)) if href == s.ui.logout), None)
    subject = f"logout link ({s.ui.logout}) on {last}"
    if index is None:
        return Finding(subject, False, "there is none")
    _, _, problems = _followed(s, page, errors, last, index)
    problems = [p for p in problems if "not at a page" not in p and "login page" not in p]
    if _path(page.url) != s.ui.login.page:
        problems.append(f"ended at {_path(page.url)}, not at the login page {s.ui.login.page}")
    if s.ui.protected:
        s.open(page, s.ui.protected[0])
        if _path(page.url) != s.ui.login.page:
            problems.append(f"after it, {s.ui.protected[0]} still opens without a login")
    return Finding(subject, not problems, "; ".join(problems) or "ended at the login page, and the session with it")


def _controls(page: Page, selectors: list[str], width: int) -> list[str]:
    """What is wrong with the primary controls on the page at a viewport `width` px wide."""
    problems = []
    for selector in selectors:
        boxes = page.locator(selector).evaluate_all(
            "els => els.map(el => { const b = el.getBoundingClientRect(); const s = getComputedStyle(el);"
            " return [b.left, b.right, b.width * b.height > 0 && s.visibility !== 'hidden']; })")
        if not boxes:
            problems.append(f"no {selector}")
        hidden = sum(1 for _, _, shown in boxes if not shown)
        outside = sum(1 for left, right, shown in boxes if shown and (left < 0 or right > width + 1))
        if hidden:
            problems.append(f"{hidden} of {len(boxes)} {selector} not visible")
        if outside:
            problems.append(f"{outside} of {len(boxes)} {selector} beyond the {width} px width")
    return problems


def phone(env: Environment) -> Checked:
    """At the phone viewport, logged in, no page scrolls sideways (the overflowing elements are named) and
    the primary controls are visible within its width."""
    checked = Checked()
    with session(env) as s:
        page, _ = s.signed_in(phone=True)
        width = s.ui.phone.width
        for p in s.ui.pages:
            s.open(page, p.path)
            sizes = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            problems = [] if sizes[0] <= sizes[1] else [
                f"{sizes[0]} px wide in a {sizes[1]} px viewport: overflowing " + ", ".join(page.evaluate(OVERFLOWING))]
            if not page.locator('meta[name=viewport][content*="width=device-width"]').count():
                problems.append("no <meta name=viewport content=width=device-width>: a phone would lay it out wider")
            problems += _controls(page, s.ui.primary_controls, width)
            checked.findings.append(Finding(f"page {p.path} at {width} x {s.ui.phone.height}", not problems,
                                            "; ".join(problems) or f"fits ({sizes[0]} px), primary controls visible"))
            checked.screenshots.append(_shot(page, f"{p.path} at {width} x {s.ui.phone.height}"))
    return checked
