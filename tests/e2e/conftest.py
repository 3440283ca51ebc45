"""Browser end-to-end tests: Debian's chromium driven by Playwright against a real `shoebox serve`.

Daemons are session-scoped (indexing and start-up are the slow part): one on an indexed copy of
the sample library, one on a generated 5,000-photo store (rows written straight into SQLite by
the search benchmark's generator: no files, so thumbnails answer 404 and tiles keep their
placeholder). The app is the built web/dist (`make web`), served by the daemon itself, so the
CSP, cookies and service worker are the real ones. Screenshots go to tests/e2e/artifacts/.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.api_support import PASSWORD, Daemon, build_indexed, create_admin, http_json

REPO = Path(__file__).resolve().parents[2]
WEB_DIST = REPO / "web" / "dist"
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
# Access tokens last 60 s (the shortest the daemon allows) so a test can watch one expire.
ACCESS_TTL = 60
SERVE = ("--auth-access-ttl", str(ACCESS_TTL), "--index-rescan-interval", "0")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def _require_built_app() -> None:
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail("web/dist is missing: run `make web` (make test does) before the browser tests")
    if not AXE.is_file():
        pytest.fail("web/node_modules/axe-core is missing: run `cd web && npm ci`")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_built_app()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def sample_daemon(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Iterator[Daemon]:
    # the indexer runs its own event loop: not in this thread, where Playwright's loop may be running
    with ThreadPoolExecutor(1) as pool:
        library, data = pool.submit(build_indexed, samples, tmp_path_factory.mktemp("e2e-sample")).result()
    create_admin(library, data)
    with Daemon(library, data, *SERVE) as d:
        yield d


@pytest.fixture(scope="session")
def big_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    from tests.bench.bench_search import generate

    root = tmp_path_factory.mktemp("e2e-big")
    library, data = root / "library", root / "data"
    library.mkdir()
    data.mkdir()
    generate(data / "shoebox.db", 5000)
    create_admin(library, data)
    with Daemon(library, data, *SERVE, "--index-scan-on-start", "false") as d:
        yield d


@pytest.fixture()
def fresh_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A first start: an empty library and no admin yet."""
    library, data = tmp_path / "library", tmp_path / "data"
    library.mkdir()
    data.mkdir()
    with Daemon(library, data, *SERVE) as d:
        yield d


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def new_page(browser: Any, daemon: Daemon, viewport: dict[str, int] = DESKTOP, **kw: Any) -> tuple[Any, Any, list[str]]:
    """A fresh context (no cookies, no service worker) and a page that records console errors."""
    ctx = browser.new_context(viewport=viewport, base_url=daemon.base, **kw)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}")
            if m.type == "error" and ("Content Security Policy" in m.text or "Uncaught" in m.text) else None)
    return ctx, page, problems


def login(page: Any, user: str = "admin", password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#u", user)
    page.fill("#p", password)
    page.click("form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def tiles_shown(page: Any) -> int:
    """Tiles in the grid whose image actually decoded."""
    return page.evaluate("""() => [...document.querySelectorAll('a.tile img')]
        .filter(i => i.complete && i.naturalWidth > 0).length""")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the page (axe injected without touching the CSP)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def shares_api(daemon: Daemon, token: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = http_json("POST", f"{daemon.base}/api/v1/shares", body, token=token)
    assert status == 201, answer
    return answer

