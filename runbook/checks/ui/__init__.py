"""Step 12's user interface checks in headless Chromium: `chromium` starts it and opens pages, `checks` walks
the pages (they load without errors, the forms work, the navigation reaches its pages, a phone's screen fits).

Their names are looked up here on first use (`__getattr__`), so that loading the steps imports no Playwright:
the checking process imports it once the first phase's session (the preflight's, which waits on what the
process imports first) has started (`checkserver.LATER`)."""

import importlib
import sys

WHERE = {"forms_submit": "checks", "navigation": "checks", "pages_load": "checks", "phone": "checks",
         "CHROMIUM": "chromium", "LAUNCHED": "chromium", "SHOT_HEIGHT": "chromium", "Checked": "chromium",
         "base_url": "chromium", "chromium_args": "chromium", "warm": "chromium"}
"""Each public name and the module of this package that holds it."""


def __getattr__(name: str):
    if name not in WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{WHERE[name]}"), name)


def stop() -> None:
    """Stop the Chromium the checks of this process share, if one of them loaded it."""
    chromium = sys.modules.get(f"{__name__}.chromium")
    if chromium is not None:
        chromium.LAUNCHED.stop()


__all__ = [*WHERE, "stop"]
