"""Fixtures every browser test module shares: its own Playwright and Chromium per test, players,
screenshots (defined in test_browser.py, the first of them) and an operator's account
(test_admin_browser.py)."""

from tests.e2e.test_admin_browser import operator_account  # noqa: F401
from tests.e2e.test_browser import (  # noqa: F401
    browser,
    browser_type,
    browser_type_launch_args,
    players,
    playwright,
    shots,
)
