"""The dashboard in a real browser: Debian's chromium driven by Playwright, each page
checked with axe-core and kept as a screenshot under ``.test-artifacts/dashboard/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".test-artifacts" / "dashboard"
#: axe-core 4.14.1 from the npm registry (`npm pack axe-core`), MPL-2.0 (axe.LICENSE).
AXE = ROOT / "tests" / "support" / "axe.min.js"
#: What the accessibility check fails on.
BLOCKING_IMPACTS = {"serious", "critical"}
PASSWORD = "motdepasse123"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: scripts/install-test-deps.sh installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Visitor:
    """One person's browser tab, collecting what must never happen: a script error, or a
    resource or inline code the Content-Security-Policy refused."""

    page: Page
    base: str
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(20_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            text = message.text
            # A refused form or fragment (403/404 shown as a page) logs its status: expected.
            if not re.search(r"status of 4\d\d", text):
                self.problems.append(text)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def check(self, name: str) -> None:
        """The page's screenshot, and no serious accessibility violation on it."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        # Evaluated through the DevTools protocol: the page's policy (no inline or foreign
        # script) stays in force for everything the page itself runs.
        self.page.evaluate(AXE.read_text())
        results: dict[str, Any] = self.page.evaluate("async () => await axe.run(document)")
        blocking = [
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']]}"
            for v in results["violations"]
            if v["impact"] in BLOCKING_IMPACTS
        ]
        assert not blocking, f"{name}: {blocking}"
        assert not self.problems, f"{name}: {self.problems}"
