"""Step 12's user interface checks in headless Chromium: `chromium` starts it and opens pages, `checks` walks
the pages (they load without errors, the forms work, the navigation reaches its pages, a phone's screen fits)."""

from runbook.checks.ui.checks import forms_submit, navigation, pages_load, phone
from runbook.checks.ui.chromium import CHROMIUM, LAUNCHED, SHOT_HEIGHT, Checked, base_url, chromium_args

__all__ = ["CHROMIUM", "LAUNCHED", "SHOT_HEIGHT", "Checked", "base_url", "chromium_args", "forms_submit", "navigation",
           "pages_load", "phone"]
