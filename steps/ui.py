"""Steps about the app's pages in a real browser (Step 12): each check's screenshots are its evidence."""

import pytest
from pytest_bdd import then

from runbook.checks import idle, ui


@pytest.fixture(scope="session", autouse=True)
def one_chromium_per_phase(request):
    """A phase's browser checks share one Chromium, started (and the smoke test user logged in) ahead
    where an earlier check of the phase waits, as are the page loads, which change nothing; it stops as the
    phase's session ends."""
    if any(item.get_closest_marker("browser") for item in request.session.items):
        env = request.getfixturevalue("environment")
        idle.ahead(lambda: ui.warm(env))
        idle.ahead_check(ui.pages_load, env)
    yield
    ui.stop()


def _shown(evidence, checked: "ui.Checked") -> None:
    for title, png in checked.screenshots:
        evidence.screenshot(title, png)
    evidence.require(checked.findings)


@then("every page of the app loads in a browser with no console error")
def pages_load(environment, evidence):
    _shown(evidence, evidence.checked(ui.pages_load, environment))


@then("the login form and the create form submit in a browser and show their result")
def forms_submit(environment, evidence):
    _shown(evidence, ui.forms_submit(environment))


@then("every navigation link of every page reaches its page")
def navigation(environment, evidence):
    _shown(evidence, ui.navigation(environment))


@then("at a phone's screen size no page scrolls sideways and the primary controls are visible")
def phone(environment, evidence):
    _shown(evidence, ui.phone(environment))
