"""The web app on the sample library: first run, login, silent refresh, timeline, search,
lightbox, share links, offline, accessibility and screenshots, in Debian's chromium."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ACCESS_TTL, DESKTOP, PHONE, SERVE, axe_violations, login, new_page, shares_api, tiles_shown
from tests.integration.api_support import PASSWORD, Daemon, create_admin, http_json
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def test_first_run_creates_the_admin_and_lands_on_the_written_empty_timeline(browser: Any, fresh_daemon: Daemon) -> None:
    ctx, page, problems = new_page(browser, fresh_daemon)
    page.goto("/")
    page.wait_for_url("**/setup")
    page.fill("#su", "ann")
    page.fill("#sp", "short")
    page.fill("#sp2", "short")
    page.click("form button[type=submit]")
    assert "at least 8" in page.locator("[role=alert]").inner_text()
    page.fill("#sp", PASSWORD)
    page.fill("#sp2", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(fresh_daemon.base + "/")
    page.get_by_text("No photos yet").wait_for()
    assert "library folder" in page.locator(".empty").inner_text()
    # setup is closed now; the account works
    assert http_json("GET", f"{fresh_daemon.base}/api/v1/setup")[1]["needed"] is False
    assert fresh_daemon.login("ann")["user"]["name"] == "ann"
    assert not problems, problems
    ctx.close()


def test_the_timeline_tells_an_admin_that_tagging_waits_for_a_missing_model(browser: Any, tmp_path: Path) -> None:
    """A models folder without the model files (a half-copied install): the admin is told on the
    timeline which task waits and why, instead of wondering why no labels ever appear."""
    library, data, models = tmp_path / "library", tmp_path / "data", tmp_path / "models"
    for folder in (library, data, models):
        folder.mkdir()
    create_admin(library, data)
    with Daemon(library, data, *SERVE, "--tagging-enabled", "true", "--tagging-models-dir", str(models)) as daemon:
        ctx, page, problems = new_page(browser, daemon)
        login(page)
        notice = page.get_by_text("Tagging is paused")
        notice.wait_for()
        assert "labels" in notice.inner_text(), notice.inner_text()
        assert not problems, problems
        ctx.close()


def test_login_shows_the_timeline_with_decoded_thumbnails_and_no_csp_violation(browser: Any, sample_daemon: Daemon) -> None:
    ctx, page, problems = new_page(browser, sample_daemon)
    page.goto("/")
    page.wait_for_url("**/login**")
    page.fill("#u", "admin")
    page.fill("#p", "wrong password!")
    page.click("form button[type=submit]")
    assert "Wrong user name or password" in page.locator("[role=alert]").inner_text()
    login(page)
    wait_until(lambda: tiles_shown(page) == 5, timeout=20, what="the 5 sample photos decoded")
    assert page.locator("h2.month").first.inner_text() == "October 2008"
    # the refresh token is an HttpOnly cookie scoped to the auth routes, nothing in storage
    cookie = next(c for c in ctx.cookies() if c["name"] == "shoebox_refresh")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/api/v1/auth"
    assert "eyJ" not in str(page.evaluate("() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)"))
    # a reload keeps the session (refresh from the cookie)
    page.reload()
    wait_until(lambda: tiles_shown(page) == 5, timeout=20, what="timeline after reload")
    assert "/login" not in page.url
    # logging out ends the session for good: a reload stays on the login page, no cached photos
    page.locator("nav.side").get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.reload()
    page.locator("#u").wait_for()
    assert "/login" in page.url
    assert page.evaluate("async () => (await caches.keys()).filter(k => k.startsWith('shoebox-')).length") == 0
    assert not problems, problems
    ctx.close()


def test_an_expired_access_token_is_refreshed_silently(browser: Any, sample_daemon: Daemon) -> None:
    ctx, page, problems = new_page(browser, sample_daemon)
    refreshes: list[int] = []
    page.on("response", lambda r: refreshes.append(r.status) if r.url.endswith("/api/v1/auth/refresh") else None)
    login(page)
    logged_in = time.monotonic()
    wait_until(lambda: tiles_shown(page) == 5, timeout=20)
    # the access token lives ACCESS_TTL seconds; wait for that, then use the app
    wait_until(lambda: time.monotonic() - logged_in > ACCESS_TTL + 2, timeout=ACCESS_TTL + 30, interval=0.5,
               what="the access token to expire")
    before = len(refreshes)
    page.locator("nav.side").get_by_role("link", name="Places").click()
    page.get_by_role("heading", name="Places").wait_for()
    page.get_by_text("Italy", exact=True).wait_for(timeout=10_000)
    assert refreshes[before:] == [200], "one silent refresh"
    assert "/login" not in page.url
    # a session revoked elsewhere (the sessions list of another device) returns to login with a message
    mine = sample_daemon.login()
    status, sessions = http_json("GET", f"{sample_daemon.base}/api/v1/auth/sessions", token=mine["access_token"])
    assert status == 200, sessions
    for s in (sessions if isinstance(sessions, list) else sessions["sessions"]):
        if s["id"] != mine["session"]:
            http_json("DELETE", f"{sample_daemon.base}/api/v1/auth/sessions/{s['id']}", token=mine["access_token"])
    page.locator("nav.side").get_by_role("link", name="Calendar").click()
    page.wait_for_url("**/login**")
    page.get_by_text("Your session ended, please log in again").wait_for()
    assert not problems, problems
    ctx.close()


def test_search_with_two_filters_autocomplete_and_a_bad_filter(browser: Any, sample_daemon: Daemon) -> None:
    ctx, page, problems = new_page(browser, sample_daemon)
    login(page)
    page.goto("/search?q=camera:canon%20year:2008")
    chips = page.locator(".chip")
    chips.first.wait_for()
    assert [c.inner_text().split("\n")[0] for c in chips.all()] == ["camera: canon", "year: 2008"]
    page.get_by_text("1 photo", exact=True).wait_for()
    wait_until(lambda: tiles_shown(page) == 1, what="the one Canon photo")
    # autocomplete offers the filter name and the camera
    box = page.locator("#search-input")
    box.click()
    box.type("cam")
    page.locator("#search-suggestions [role=option]").first.wait_for()
    options = page.locator("#search-suggestions [role=option]").all_inner_texts()
    assert any(o.startswith("camera") for o in options), options
    box.fill("")
    # a bad filter: the server's message, next to the box, naming the filter
    page.goto("/search?q=contry:it%20year:2008")
    alert = page.locator("#search-error")
    alert.wait_for()
    assert "contry" in alert.inner_text()
    assert page.locator(".chip.bad").inner_text().startswith("contry")
    # the query is in the URL: back goes to the previous search
    page.go_back()
    page.get_by_text("1 photo", exact=True).wait_for()
    assert not problems, problems
    ctx.close()


def test_lightbox_opens_zooms_into_the_original_goes_next_and_back_keeps_the_scroll(browser: Any, sample_daemon: Daemon) -> None:
    ctx, page, problems = new_page(browser, sample_daemon)
    login(page)
    wait_until(lambda: tiles_shown(page) == 5)
    first = page.locator("a.tile").first
    first_id = first.get_attribute("data-photo")
    first.click()
    page.wait_for_url(re.compile(rf"\?photo={first_id}$"))
    page.locator(".pswp--open").wait_for()
    # fit_1920 at once (after the blurhash placeholder)
    wait_until(lambda: page.evaluate("""() => [...document.querySelectorAll('.pswp__img')]
        .some(i => i.src.includes('/fit_1920') && i.complete && i.naturalWidth > 0)"""), what="fit_1920 shown")
    # zoom in: the original replaces the fit_1920 thumbnail
    page.keyboard.press("+")
    wait_until(lambda: page.evaluate("""() => [...document.querySelectorAll('.pswp__img')]
        .some(i => i.dataset.original === '1' && i.src.startsWith('blob:') && i.naturalWidth > 0)"""),
               what="the original loaded on zoom")
    page.keyboard.press("0")
    page.keyboard.press("ArrowRight")
    page.wait_for_url(lambda url: f"photo={first_id}" not in url and "photo=" in url)
    # the info panel shows the metadata of the photo on screen
    page.keyboard.press("i")
    page.locator("aside.info").wait_for()
    assert "taken" in page.locator("aside.info").inner_text().lower()
    page.keyboard.press("i")
    # back closes the lightbox (paging replaced the entry, it did not add one) and the timeline is still there
    page.go_back()
    wait_until(lambda: "photo=" not in page.url and page.locator(".pswp--open").count() == 0, what="lightbox closed")
    assert tiles_shown(page) == 5
    assert not problems, problems
    ctx.close()


def test_a_share_link_shows_a_guest_only_its_photos(browser: Any, sample_daemon: Daemon) -> None:
    admin = sample_daemon.login()
    status, page_json = http_json("GET", f"{sample_daemon.base}/api/v1/photos?limit=10", token=admin["access_token"])
    assert status == 200
    photos = page_json["photos"]
    shared, other = photos[0], photos[1]
    link = shares_api(sample_daemon, admin["access_token"], {"photos": [shared["id"]], "title": "For Bob"})
    ctx, page, problems = new_page(browser, sample_daemon)
    page.goto(f"/s/{link['token']}")
    page.get_by_role("heading", name="For Bob").wait_for()
    wait_until(lambda: tiles_shown(page) == 1, what="the one shared photo")
    assert page.locator("a.tile").get_attribute("data-photo") == shared["id"]
    # guessing URLs: nothing else opens with the link, and the guest has no session
    def status_of(url: str) -> int:
        return page.evaluate("async (u) => (await fetch(u)).status", url)
    token = link["token"]
    assert status_of(f"/api/v1/s/{token}/photos/{other['id']}") == 404
    assert status_of(f"/api/v1/s/{token}/t/{other['thumb_key']}/tile_224") == 404
    assert status_of(f"/api/v1/s/{token}/photos/{shared['id']}/original") == 403  # no download allowed
    assert status_of("/api/v1/photos") == 401
    assert status_of(f"/api/v1/t/{other['thumb_key']}/tile_224?t={token}") in (401, 403)
    assert status_of("/api/v1/timeline/months") == 401
    # the guest's lightbox works on the shared photo
    page.locator("a.tile").click()
    page.locator(".pswp--open").wait_for()
    # a wrong token is a clean "gone" page
    page.goto("/s/not-a-real-token-0123456789abcdef")
    page.get_by_text("does not exist").wait_for()
    assert not problems, problems
    ctx.close()


def test_offline_reload_shows_the_shell_timeline_and_cached_thumbnails(browser: Any, sample_daemon: Daemon) -> None:
    ctx, page, problems = new_page(browser, sample_daemon)
    login(page)
    wait_until(lambda: tiles_shown(page) == 5)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=20_000)
    # the worker took over after the first load: load once more through it so it caches what it sees
    page.reload()
    wait_until(lambda: tiles_shown(page) == 5)
    wait_until(lambda: page.evaluate("""async () => (await (await caches.open('shoebox-thumbs')).keys()).length""") >= 5,
               what="thumbnails cached")
    # installable: Chromium finds a valid manifest, icons and a controlling service worker
    cdp = ctx.new_cdp_session(page)
    errors = [e["errorId"] for e in cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]]
    assert [e for e in errors if e != "in-incognito"] == [], errors  # test contexts are incognito
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [] and '"display": "standalone"' in manifest["data"].replace('":"', '": "')
    ctx.set_offline(True)
    page.reload()
    page.locator(".offline").wait_for()
    page.locator("nav.side").wait_for()
    wait_until(lambda: tiles_shown(page) == 5, what="cached thumbnails shown offline")
    assert page.locator("h2.month").first.inner_text() == "October 2008"
    # cache keys carry no token
    keys = page.evaluate("async () => (await (await caches.open('shoebox-thumbs')).keys()).map(r => r.url)")
    assert all("t=" not in k for k in keys), keys
    ctx.set_offline(False)
    assert not [p for p in problems if "pageerror" in p], problems
    ctx.close()


VIEWS = [
    ("timeline", "/", "a.tile img"),
    ("search", "/search?q=year:2008", "a.tile img"),
    ("map", "/map", ".maplibregl-canvas"),
    ("albums", "/albums", "h1"),
    ("people", "/people", "h1"),
    ("places", "/places", "summary"),
    ("calendar", "/calendar", "summary"),
    ("folders", "/folders", ".list a"),
    ("favorites", "/favorites", "h1"),
]


@pytest.mark.parametrize("viewport_name", ["phone", "desktop"])
def test_main_views_have_no_serious_accessibility_violations(browser: Any, sample_daemon: Daemon, artifacts: Path,
                                                             viewport_name: str) -> None:
    viewport = PHONE if viewport_name == "phone" else DESKTOP
    # the phone in the dark theme, the desktop in the light one: both themes pass the contrast rules
    ctx, page, problems = new_page(browser, sample_daemon, viewport, device_scale_factor=2 if viewport_name == "phone" else 1,
                                   color_scheme="dark" if viewport_name == "phone" else "light")
    page.goto("/login")
    page.locator("#u").wait_for()
    found: dict[str, Any] = {"login": axe_violations(page)}
    page.screenshot(path=str(artifacts / f"login-{viewport_name}.png"))
    login(page)
    for name, path, ready in VIEWS:
        page.goto(path)
        page.locator(ready).first.wait_for()
        if "tile" in ready:
            wait_until(lambda: tiles_shown(page) > 0)
        found[name] = axe_violations(page)
        page.screenshot(path=str(artifacts / f"{name}-{viewport_name}.png"))
    page.goto("/")
    wait_until(lambda: tiles_shown(page) == 5)
    page.locator("a.tile").first.click()
    page.locator(".pswp--open").wait_for()
    wait_until(lambda: page.evaluate("""() => [...document.querySelectorAll('.pswp__img')]
        .some(i => i.src.includes('/fit_1920') && i.complete && i.naturalWidth > 0)"""))
    page.wait_for_function("() => getComputedStyle(document.querySelector('.pswp')).opacity === '1'")
    found["lightbox"] = axe_violations(page)
    page.screenshot(path=str(artifacts / f"lightbox-{viewport_name}.png"))
    found = {k: v for k, v in found.items() if v}
    assert not found, found
    assert not problems, problems
    ctx.close()


def test_an_album_is_listed_and_opens_with_its_photos(browser: Any, sample_daemon: Daemon) -> None:
    admin = sample_daemon.login()
    _, listing = http_json("GET", f"{sample_daemon.base}/api/v1/photos?limit=10", token=admin["access_token"])
    ids = [p["id"] for p in listing["photos"][:3]]
    status, album = http_json("POST", f"{sample_daemon.base}/api/v1/albums", {"title": "Garden walk", "photos": ids},
                              token=admin["access_token"])
    assert status == 201, album
    ctx, page, problems = new_page(browser, sample_daemon, PHONE)
    login(page)
    page.goto("/albums")
    page.get_by_role("link", name=re.compile("Garden walk")).click()
    page.get_by_role("heading", name="Garden walk").wait_for()
    wait_until(lambda: tiles_shown(page) == 3, what="the album's three photos")
    assert sorted(page.locator("a.tile").evaluate_all("els => els.map(e => e.dataset.photo)")) == sorted(ids)
    # the lightbox pages through the album only
    page.locator("a.tile").first.click()
    page.locator(".pswp--open").wait_for()
    wait_until(lambda: page.evaluate("""() => [...document.querySelectorAll('.pswp__img')]
        .some(i => i.src.includes('/fit_1920') && i.complete && i.naturalWidth > 0)"""))
    page.wait_for_function("() => getComputedStyle(document.querySelector('.pswp')).opacity === '1'")
    page.keyboard.press("Escape")
    page.wait_for_url(lambda url: "photo=" not in url)
    assert not problems, problems
    ctx.close()
