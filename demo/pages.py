"""The demo's server-rendered pages: log in, list and create items, upload and download files.

Each page calls the JSON API's own handler in app.py (login, create_item, upload_file, download_file)
with the same request, re-encoded as the API expects it, so a page and the API never disagree. The
session cookie is the token the login handler issues (signed with APP_SECRET_KEY); every form carries
a CSRF token, the HMAC of a per-browser nonce cookie. Templates are files under templates/, rendered
with string.Template; the stylesheet is static/style.css. app.py imports this module and routes to it;
this module reads app.py's functions when a request comes, never at import.
"""

from __future__ import annotations

import html
import io
import json
import secrets
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, urlencode

import app as api
import settings
import tokens

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
SESSION, CSRF = "demo_session", "demo_csrf"
MAX_FORM_BYTES = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024
LISTED = 100
"""How many of the newest items and files a page lists."""
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
]


def render(template: str, /, **values: str) -> str:
    """templates/`template` with `$key` replaced by `values` (already escaped by the caller)."""
    return Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)


def _cookies(request: api.Request) -> dict[str, str]:
    found = {}
    for part in request.environ.get("HTTP_COOKIE", "").split(";"):
        name, _, value = part.strip().partition("=")
        found.setdefault(name, value)
    return found


def _cookie(request: api.Request, name: str, value: str, max_age: int) -> tuple[str, str]:
    secure = "; Secure" if _https(request) else ""
    return "Set-Cookie", f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"


def _https(request: api.Request) -> bool:
    return "https" in (request.environ.get("wsgi.url_scheme"), request.environ.get("HTTP_X_FORWARDED_PROTO"))


def session_user(request: api.Request) -> str | None:
    """The user the session cookie was issued to, while it is valid."""
    token = _cookies(request).get(SESSION)
    return tokens.verify_token(token, api._secret_key()) if token else None


def _nonce(request: api.Request) -> tuple[str, list[tuple[str, str]]]:
    """This browser's CSRF nonce, and the header that sets it when it had none."""
    nonce = _cookies(request).get(CSRF, "")
    if len(nonce) == 32 and nonce.isalnum():
        return nonce, []
    nonce = secrets.token_hex(16)
    return nonce, [_cookie(request, CSRF, nonce, tokens.TOKEN_TTL_SECONDS)]


def page(request: api.Request, status: HTTPStatus, title: str, template: str, **values: str) -> api.Response:
    """A whole page: the layout with its navigation around templates/`template`, rendered with `values`
    (already escaped) and `csrf`, this browser's CSRF token."""
    nonce, set_nonce = _nonce(request)
    user = session_user(request)
    account = render("nav_user.html", user=html.escape(user)) if user else render("nav_guest.html")
    body = render(template, csrf=tokens.sign(f"csrf:{nonce}", api._secret_key()), **values)
    text = render("layout.html", title=html.escape(title), account=account, content=body)
    return api.Response(status, text.encode(), "text/html; charset=utf-8", [*SECURITY_HEADERS, *set_nonce])


def redirect(location: str, headers: list[tuple[str, str]] | None = None) -> api.Response:
    return api.Response(HTTPStatus.SEE_OTHER, b"", "text/html; charset=utf-8",
                        [("Location", location), *SECURITY_HEADERS, *(headers or [])])


def _form(request: api.Request) -> dict[str, str]:
    fields = parse_qs(request.body(MAX_FORM_BYTES).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _csrf_ok(request: api.Request, token: str) -> bool:
    nonce = _cookies(request).get(CSRF, "")
    return bool(nonce) and secrets.compare_digest(token, tokens.sign(f"csrf:{nonce}", api._secret_key()))


def _refused(request: api.Request) -> api.Response:
    return page(request, HTTPStatus.FORBIDDEN, "Form expired", "message.html",
                message="This form has expired. Reload the page and submit it again.")


def _call(request: api.Request, handler: api.Handler, body: bytes, query: str = "", args: tuple[str, ...] = (),
          token: str | None = None, content_type: str = "application/json") -> api.Response:
    """The API `handler`'s answer to this request carrying `body` (and the session's token as a bearer)."""
    environ = request.environ | {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
                                 "CONTENT_TYPE": content_type, "QUERY_STRING": query}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return handler(api.Request(environ, args))


def home(request: api.Request) -> api.Response:
    return redirect("/items" if session_user(request) else "/login")


def login_form(request: api.Request, error: str = "", status: HTTPStatus = HTTPStatus.OK) -> api.Response:
    notice = render("error.html", message=html.escape(error)) if error else ""
    return page(request, status, "Log in", "login.html", notice=notice)


def log_in(request: api.Request) -> api.Response:
    form = _form(request)
    if not _csrf_ok(request, form.get("csrf", "")):
        return _refused(request)
    credentials = {"username": form.get("username", ""), "password": form.get("password", "")}
    try:
        answer = _call(request, api.login, json.dumps(credentials).encode())
    except api.HttpError as error:
        return login_form(request, error.message, error.status)
    token = json.loads(answer.body)["token"]
    return redirect("/items", [_cookie(request, SESSION, token, tokens.TOKEN_TTL_SECONDS)])


def log_out(request: api.Request) -> api.Response:
    return redirect("/login", [_cookie(request, SESSION, "", 0)])


def _signed_in(handler: api.Handler) -> api.Handler:
    """Send a request without a valid session to the login page."""

    def wrapper(request: api.Request, *args, **kwargs) -> api.Response:
        if session_user(request) is None:
            return redirect("/login")
        return handler(request, *args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = handler.__name__
    return wrapper


def _rows(query: str) -> list[tuple]:
    with settings.connect(api.DATABASE_URL) as conn:
        return conn.execute(query, (LISTED,)).fetchall()


@_signed_in
def items(request: api.Request, notice: str = "", status: HTTPStatus = HTTPStatus.OK) -> api.Response:
    rows = _rows("SELECT id, name FROM items ORDER BY id DESC LIMIT %s")
    listed = "".join(render("item_row.html", id=str(i), name=html.escape(name)) for i, name in rows)
    created = request.query("created")
    if not notice and created.isdigit():
        notice = render("notice.html", message=f"Created item {created}.")
    return page(request, status, "Items", "items.html", notice=notice,
                rows=listed or render("empty_row.html", what="No items yet."))


@_signed_in
def create_item(request: api.Request) -> api.Response:
    form = _form(request)
    if not _csrf_ok(request, form.get("csrf", "")):
        return _refused(request)
    try:
        answer = _call(request, api.create_item, json.dumps({"name": form.get("name", "")}).encode(),
                       token=_cookies(request)[SESSION])
    except api.HttpError as error:
        return items(request, render("error.html", message=html.escape(error.message)), error.status)
    created = json.loads(answer.body)
    return redirect("/items?" + urlencode({"created": created["id"]}))


@_signed_in
def files(request: api.Request, notice: str = "", status: HTTPStatus = HTTPStatus.OK) -> api.Response:
    rows = _rows("SELECT id, name, size FROM files ORDER BY id DESC LIMIT %s")
    listed = "".join(render("file_row.html", id=str(i), name=html.escape(name), size=str(size))
                     for i, name, size in rows)
    return page(request, status, "Files", "files.html", notice=notice,
                rows=listed or render("empty_row.html", what="No files yet."))


def _upload(request: api.Request) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """The multipart form's text fields, and its file (name, bytes) if one was chosen."""
    content_type = request.environ.get("CONTENT_TYPE", "")
    if not content_type.startswith("multipart/form-data"):
        raise api.HttpError(HTTPStatus.BAD_REQUEST, "the upload form must be sent as multipart/form-data")
    raw = request.body(api.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD)
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields, chosen = {}, None
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        if filename is not None:
            chosen = (filename, part.get_payload(decode=True) or b"") if filename else None
        elif name:
            fields[name] = part.get_content().strip()
    return fields, chosen


@_signed_in
def upload_file(request: api.Request) -> api.Response:
    try:
        fields, chosen = _upload(request)
        if not _csrf_ok(request, fields.get("csrf", "")):
            return _refused(request)
        if chosen is None:
            raise api.HttpError(HTTPStatus.BAD_REQUEST, "choose a file to upload")
        name, data = chosen
        _call(request, api.upload_file, data, urlencode({"name": name}), token=_cookies(request)[SESSION],
              content_type="application/octet-stream")
    except api.HttpError as error:
        return files(request, render("error.html", message=html.escape(error.message)), error.status)
    return redirect("/files")


@_signed_in
def download_file(request: api.Request) -> api.Response:
    return _call(request, api.download_file, b"", args=request.args, token=_cookies(request)[SESSION])


def static(request: api.Request) -> api.Response:
    path = STATIC / request.args[0]
    if path.suffix not in STATIC_TYPES or not path.is_file():
        raise api.HttpError(HTTPStatus.NOT_FOUND, "not found")
    return api.Response(HTTPStatus.OK, path.read_bytes(), STATIC_TYPES[path.suffix], [("Cache-Control", "max-age=300")])
