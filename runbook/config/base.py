"""What the sections share: the base model, the annotated types and validators used by several sections, and
how a key's location is written in a message."""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from runbook.secrets import check_reference, references


def _mode(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3}", value):
        raise ValueError('write the mode as a quoted octal string, e.g. "0600"')
    return value.zfill(4)


def _secretable(value: str) -> str:
    for ref in references(value):
        check_reference(ref)
    return value


def _no_literal_password(value: str) -> str:
    match = re.match(r"[a-z][a-z0-9+.-]*://[^:/@\s]+:([^@\s]+)@", value, re.IGNORECASE)
    if match and not re.fullmatch(r"\$\{[^}]+\}", match.group(1)):
        raise ValueError("a password is written in the file; reference it as ${NAME} instead")
    return value


Mode = Annotated[str, BeforeValidator(_mode)]
Secretable = Annotated[str, AfterValidator(_secretable)]
"""A value that may hold secret references; resolved by `resolve_secrets`, listed by `Environment.secret_values`."""
Url = Annotated[str, AfterValidator(_secretable), AfterValidator(_no_literal_password)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Command = Annotated[list[str], Field(min_length=1)]
"""An argument list run on a host from the release folder; Jinja2 placeholders such as `{{ python }}`."""


def _key(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
