r"""The env file format the app reads (dotenv, as python-dotenv parses it): one writer, one reader.

A value is written double-quoted, escaping only what python-dotenv's double-quoted parser decodes, so
`parse(render(values)) == values` for any text; neither side expands `$` (interpolation is off).

    >>> print(render({"A": "it's $HOME", "B": 'say "hi"\n'}), end="")
    A="it's $HOME"
    B="say \"hi\"\n"
"""

import io

import dotenv

ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"}
"""The backslash and the quote, which the double-quoted parser reads specially, and the line breaks a
reader's universal newlines would change; every other character stands for itself."""


def quote(value: str) -> str:
    """The value as a double-quoted dotenv value."""
    return '"' + "".join(ESCAPES.get(c, c) for c in value) + '"'


def render(values: dict[str, str]) -> str:
    return "".join(f"{key}={quote(value)}\n" for key, value in values.items())


def parse(text: str) -> dict[str, str]:
    """The file's values, as the app reads them; a key without `=` is left out."""
    found = dotenv.dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {key: value for key, value in found.items() if value is not None}
