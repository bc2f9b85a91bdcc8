"""Step 12's user interface checks against the pages the environment's `ui` section names, at the origin of
`endpoints.health`: each returns its findings and the screenshots it took as evidence."""

from dataclasses import dataclass
from secrets import token_hex

from playwright.sync_api import Page
from playwright.sync_api import Error as PlaywrightError

from runbook.checks import smoke
from runbook.checks.ui.chromium import Checked, Session, first_line, path, section, session, shot
from runbook.checks.ui.scripts import BOXES, LAID_OUT_FOR_PHONES, LINK_AT, LINKS, OVERFLOWING, TEXT_OF
from runbook.config import Environment
from runbook.findings import Finding


def _loaded(s: Session, page: Page, errors: list[str], wanted: str, checked: Checked) -> None:
    """Open the page `wanted`: it must answer 200, stay at its path, and log no console error."""
    errors.clear()
    response = s.open(page, wanted)
    problems = [] if response.status == 200 else [f"answered {response.status}"]
    if path(page.url) != wanted:
        problems.append(f"ended at {path(page.url)}")
    problems += [f"console error: {e}" for e in errors]
    checked.findings.append(Finding(f"page {wanted}", not problems, "; ".join(problems)
                                    or f"loaded with 200 and no console error: {page.title()!r}"))
    checked.screenshots.append(shot(page, f"page {wanted}"))


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
        shows = page.evaluate(TEXT_OF, s.ui.login.shows) if path(page.url) != s.ui.login.page else ""
        ok = bool(answer) and answer.status == 200 and username in shows
        checked.findings.append(Finding(
            f"login form on {s.ui.login.page}", ok,
            f"led to {path(page.url)} ({answer and answer.status}), " +
            (f"which shows {username!r} in {s.ui.login.shows}" if ok else f"{s.ui.login.shows} does not show {username!r}")))
        checked.screenshots.append(shot(page, "after logging in"))
        if not ok:
            return checked
        create, name = s.ui.create, f"runbook-ui-{token_hex(4)}"
        s.open(page, create.page)
        s.fill(page, create.form, create.field, name)
        answer = s.submit(page, create.form, f"creating {name!r} on {create.page}")
        ok = answer is not None and answer.status == 200 and name in page.evaluate(TEXT_OF, create.shows)
        checked.findings.append(Finding(
            f"create form on {create.page}", ok,
            f"sent {name!r}, led to {path(page.url)} ({answer and answer.status}), which "
            + ("lists it" if ok else f"does not list it in {create.shows}")))
        checked.screenshots.append(shot(page, f"after creating {name}"))
    return checked


def _links(page: Page, selector: str) -> list[tuple[str, str]]:
    """(text, path) of each navigation link on the page, in order."""
    return [(text, path(href)) for text, href in page.evaluate(LINKS, selector)]


@dataclass(frozen=True)
class Followed:
    """A navigation link clicked: its text and path, the status and path of the page it led to, the console
    errors on the way, or why it led to no page."""

    text: str
    href: str
    status: int | None = None
    reached: str = ""
    errors: tuple[str, ...] = ()
    failure: str = ""


def _follow(s: Session, page: Page, errors: list[str], start: str, index: int) -> Followed:
    """Click the navigation link number `index` of `start`, opening it first unless the page shows it.

    The click is the mouse's, at the middle of the link (`scripts.LINK_AT`): one that lands on anything but the
    link leads to no page, or to another, and fails all the same."""
    if page.url != s.url(start):
        s.open(page, start)
    found = page.evaluate(LINK_AT, [s.ui.navigation, index])
    if found is None:
        return Followed(f"number {index + 1} of {s.ui.navigation}", "", failure="is no longer on the page")
    text, href, x, y, shown = found
    href = path(href)
    if not shown:
        return Followed(text, href, failure="is not shown: it takes no room on the page")
    errors.clear()
    try:
        with page.expect_navigation(wait_until="load") as answer:
            page.mouse.click(x, y)
    except PlaywrightError as e:
        return Followed(text, href, failure=f"did not lead to a page: {first_line(e)}")
    return Followed(text, href, answer.value and answer.value.status, path(page.url), tuple(errors))


def _answer_problems(followed: Followed) -> list[str]:
    if followed.failure:
        return [followed.failure]
    return ([] if followed.status == 200 else [f"answered {followed.status}"]) + [
        f"console error: {e}" for e in followed.errors]


def _link(s: Session, followed: Followed, start: str) -> Finding:
    """A link reaches its page: the page it names, or (a link to no page of the app, such as `/`) one of them;
    never the login page for a user who is logged in."""
    problems = _answer_problems(followed)
    pages = [p.path for p in s.ui.pages]
    if not followed.failure:
        if followed.reached != followed.href and (followed.href in pages or followed.reached not in pages):
            problems.append(f"ended at {followed.reached}, not at a page of the app")
        elif followed.reached == s.ui.login.page != followed.href:
            problems.append(f"sent a logged-in user to the login page {followed.reached}")
    return Finding(f"link {followed.text!r} ({followed.href}) on {start}", not problems,
                   "; ".join(problems) or f"reached {followed.reached}")


def navigation(env: Environment) -> Checked:
    """On every page, logged in, each navigation link reaches its page (200, no console error); the logout
    link, followed last, ends at the login page and ends the session.

    The links are clicked in a walk: from the page a click reached, its next link not yet clicked, a page
    being opened by its address only where the walk has nowhere left to go (half the page loads of opening
    each link's page before its click). The findings and screenshots are listed page by page all the same."""
    with session(env) as s:
        page, errors = s.signed_in()
        pages = [p.path for p in s.ui.pages]
        left: dict[str, list[int]] = {}
        """Each page seen, and its links not clicked yet."""
        findings: dict[tuple[int, int], Finding] = {}
        """Each finding by its page's place in `pages` and its link's on that page (-1: about the page)."""
        shots: dict[int, tuple[str, bytes]] = {}
        here: str | None = None
        while True:
            if here in pages and here not in left:
                links = _links(page, s.ui.navigation)
                left[here] = [i for i, (_, href) in enumerate(links) if href != s.ui.logout]
                if not links:
                    findings[(pages.index(here), -1)] = Finding(f"page {here}", False,
                                                                f"has no navigation link ({s.ui.navigation})")
                shots[pages.index(here)] = shot(page, f"navigation of {here}")
            if not left.get(here):
                here = next((p for p in pages if left.get(p, True)), None)
                if here is None:
                    break
                s.open(page, here)
                continue
            index = left[here].pop(0)
            followed = _follow(s, page, errors, here, index)
            findings[(pages.index(here), index)] = _link(s, followed, here)
            here = followed.reached if followed.status == 200 else None
        checked = Checked(findings=[f for _, f in sorted(findings.items())],
                          screenshots=[c for _, c in sorted(shots.items())])
        if s.ui.logout:
            checked.findings.append(_logs_out(s, page, errors))
    return checked


def _logs_out(s: Session, page: Page, errors: list[str]) -> Finding:
    """The logout link of the last page leads to the login page, after which a page needing a login is
    refused."""
    last = s.ui.pages[-1].path
    if page.url != s.url(last):
        s.open(page, last)
    index = next((i for i, (_, href) in enumerate(_links(page, s.ui.navigation)) if href == s.ui.logout), None)
    subject = f"logout link ({s.ui.logout}) on {last}"
    if index is None:
        return Finding(subject, False, "there is none")
    followed = _follow(s, page, errors, last, index)
    problems = _answer_problems(followed)
    if not followed.failure and followed.reached != s.ui.login.page:
        problems.append(f"ended at {followed.reached}, not at the login page {s.ui.login.page}")
    if s.ui.protected:
        s.open(page, s.ui.protected[0])
        if path(page.url) != s.ui.login.page:
            problems.append(f"after it, {s.ui.protected[0]} still opens without a login")
    return Finding(subject, not problems, "; ".join(problems) or "ended at the login page, and the session with it")


def _controls(page: Page, selectors: list[str], width: int) -> list[str]:
    """What is wrong with the primary controls on the page at a viewport `width` px wide."""
    problems = []
    for selector in selectors:
        boxes = page.evaluate(BOXES, selector)
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
            if not page.evaluate(LAID_OUT_FOR_PHONES):
                problems.append("no <meta name=viewport content=width=device-width>: a phone would lay it out wider")
            problems += _controls(page, s.ui.primary_controls, width)
            checked.findings.append(Finding(f"page {p.path} at {width} x {s.ui.phone.height}", not problems,
                                            "; ".join(problems) or f"fits ({sizes[0]} px), primary controls visible"))
            checked.screenshots.append(shot(page, f"{p.path} at {width} x {s.ui.phone.height}"))
    return checked
