"""The app's server-rendered pages, checked in headless Chromium (Step 12): which pages there are, the
forms the journeys fill in, and the phone viewport. An environment without `ui` has no pages to check:
its user interface scenarios are not configured (declare them under `not_applicable` with a reason).

    ui:
      pages:
        - {path: /login, login: false}
        - {path: /items}
        - {path: /files}

An https endpoint whose certificate a private CA signed is trusted through `endpoints.ca_file`, as every
other call to the endpoints is.
"""

from typing import Annotated

from pydantic import Field, model_validator

from runbook.config.base import Model

PagePath = Annotated[str, Field(pattern=r"^/[^\s#]*$")]
Selector = Annotated[str, Field(min_length=1)]
"""A CSS selector, as the browser takes it (`document.querySelectorAll`): no Playwright extension."""


class Page(Model):
    path: PagePath
    login: bool = True
    """It needs a login: without one it must send the browser to the login page (Step 5's access controls)."""


class LoginForm(Model):
    page: PagePath = "/login"
    form: Selector = "form#login"
    username: Selector = "[name=username]"
    password: Selector = "[name=password]"
    shows: Selector = "nav"
    """Where the page after a login shows who is logged in."""


class CreateForm(Model):
    page: PagePath = "/items"
    form: Selector = "form#create-item"
    field: Selector = "[name=name]"
    shows: Selector = "#items"
    """Where the page after the form is sent lists what was created."""


class Viewport(Model):
    width: int = Field(375, ge=200, le=4000)
    height: int = Field(667, ge=200, le=4000)


class Ui(Model):
    pages: list[Page] = Field(min_length=1)
    navigation: Selector = "nav a"
    """The navigation links every page has; each must reach its page."""
    logout: PagePath | None = "/logout"
    """The navigation link that ends the session: it must lead to the login page, and is followed last."""
    login: LoginForm = LoginForm()
    create: CreateForm = CreateForm()
    phone: Viewport = Viewport()
    primary_controls: list[Selector] = ["nav a", "main form button[type=submit]"]
    """What must be visible, within the phone viewport's width, on every page."""

    @model_validator(mode="after")
    def _known_pages(self) -> "Ui":
        paths = [p.path for p in self.pages]
        if len(set(paths)) != len(paths):
            raise ValueError(f"pages: each path once, got {paths}")
        for name, form in (("login", self.login), ("create", self.create)):
            if form.page not in paths:
                raise ValueError(f"{name}.page {form.page!r} is not one of the pages {paths}")
        if next(p for p in self.pages if p.path == self.login.page).login:
            raise ValueError(f"the login page {self.login.page} cannot need a login: set `login: false` on it")
        return self

    @property
    def protected(self) -> list[str]:
        """The pages that need a login."""
        return [p.path for p in self.pages if p.login]
