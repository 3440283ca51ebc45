"""Editing a photo in the lightbox (issue 12, point 1) in Debian's chromium against `shoebox serve`:
a title and a date with its UTC offset saved as manual edits, still there after a reload and after
a re-index that brings a Lightroom sidecar; a refused value keeps what was typed and shows why;
a viewer sees no edit control and the API refuses the edit anyway."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import PHONE, SERVE, axe_violations, login, new_page
from tests.integration.api_support import PASSWORD, Daemon, build_indexed, create_admin, http_json
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
   photoshop:DateCreated="2011-02-03T04:05:06+01:00">
  <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Beach</rdf:li></rdf:Alt></dc:title>
  <dc:description><rdf:Alt><rdf:li xml:lang="x-default">Written by Lightroom</rdf:li></rdf:Alt></dc:description>
 </rdf:Description></rdf:RDF></x:xmpmeta>"""


@pytest.fixture(scope="module")
def edit_daemon(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Iterator[Daemon]:
    """A daemon of its own: these tests change photos the other browser tests look at."""
    with ThreadPoolExecutor(1) as pool:  # the indexer runs its own event loop, not Playwright's thread
        library, data = pool.submit(build_indexed, samples, tmp_path_factory.mktemp("e2e-edit")).result()
    create_admin(library, data)
    with Daemon(library, data, *SERVE) as d:
        yield d


def photo_of(daemon: Daemon, token: str, path: str) -> dict[str, Any]:
    status, page = http_json("GET", f"{daemon.base}/api/v1/photos?limit=100", token=token)
    assert status == 200, page
    for summary in page["photos"]:
        status, p = http_json("GET", f"{daemon.base}/api/v1/photos/{summary['id']}", token=token)
        if any(f["path"] == path for f in p["files"]):
            return p
    raise AssertionError(f"no photo has {path}")


def test_a_title_and_a_date_with_offset_edited_in_the_lightbox_stay_manual_through_reload_and_reindex(
        browser: Any, edit_daemon: Daemon, artifacts: Path) -> None:
    token = edit_daemon.login()["access_token"]
    photo = photo_of(edit_daemon, token, "camera/Canon_40D.jpg")
    assert photo["sources"]["taken_at"] == "exif"
    ctx, page, problems = new_page(browser, edit_daemon)
    login(page)
    page.goto(f"/?photo={photo['id']}")
    page.locator(".pswp--open").wait_for()
    page.get_by_role("button", name="Info").click()
    info = page.locator("aside.info")
    info.locator("dt", has_text="Taken").filter(has_text="from").wait_for()
    assert "from EXIF" in info.locator("dt", has_text="Taken").inner_text()
    info.get_by_role("button", name="Edit").click()

    page.fill("#edit-title", "Harbour at dusk")
    page.press("#edit-title", "Enter")
    # a date the daemon refuses: its message under the field, and what was typed stays
    page.fill("#edit-date", "1700-01-02T03:04:05")
    page.locator("#edit-date-err").filter(has_text="1800").wait_for()
    assert page.input_value("#edit-date") == "1700-01-02T03:04:05"
    # an offset the panel cannot read: said at once, nothing sent
    page.fill("#edit-offset", "+15:00")
    page.press("#edit-offset", "Enter")
    page.locator("#edit-date-err").filter(has_text="Not a UTC offset").wait_for()
    assert page.input_value("#edit-offset") == "+15:00"
    page.fill("#edit-date", "2019-07-05T15:30:00")
    page.fill("#edit-offset", "+05:30")
    page.press("#edit-offset", "Enter")

    def saved() -> dict[str, Any]:
        return http_json("GET", f"{edit_daemon.base}/api/v1/photos/{photo['id']}", token=token)[1]

    wait_until(lambda: saved()["taken_offset"] == 330 and saved()["title"] == "Harbour at dusk", what="edits saved")
    p = saved()
    assert p["taken_at"] == "2019-07-05T15:30:00" and p["taken_at_utc"] == "2019-07-05T10:00:00Z"
    assert p["sources"]["title"] == p["sources"]["taken_at"] == "manual"
    assert page.locator("#edit-date-err").inner_text() == ""
    # a place found by name offline becomes the photo's location
    page.fill("#edit-place", "koeln")
    info.get_by_role("button", name=re.compile("^Koeln")).click()
    info.locator(".where").filter(has_text="Koeln, North Rhine-Westphalia, Germany").wait_for()
    assert saved()["place"]["city"] == "Koeln" and saved()["sources"]["lat"] == "manual"
    page.screenshot(path=str(artifacts / "edit-desktop.png"))
    violations = axe_violations(page)
    assert not violations, violations

    # reload: the lightbox and its info panel come back with the edits, marked manual
    page.reload()
    page.locator(".pswp--open").wait_for()
    info.locator("dd.title").filter(has_text="Harbour at dusk").wait_for()
    assert "from manual edit" in info.locator("dt", has_text="Title").inner_text()
    taken = info.locator("dt", has_text="Taken")
    assert "from manual edit" in taken.inner_text()
    assert "2019" in info.locator("dd.taken").inner_text() and "UTC+05:30" in info.locator("dd.taken").inner_text()

    # Lightroom writes a sidecar with another title and date; a re-index of the folder reads it
    library = edit_daemon.library
    (library / "camera" / "Canon_40D.xmp").write_text(SIDECAR, encoding="utf-8")
    original = library / "camera" / "Canon_40D.jpg"
    st = original.stat()
    os.utime(original, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    status, body = http_json("POST", f"{edit_daemon.base}/api/v1/index/start", {"path": "camera"}, token=token)
    assert status == 202, body
    wait_until(lambda: saved()["description"] == "Written by Lightroom", timeout=30, what="the sidecar read by a re-index")
    p = saved()
    assert p["title"] == "Harbour at dusk" and p["taken_at"] == "2019-07-05T15:30:00" and p["taken_offset"] == 330
    assert p["sources"]["title"] == p["sources"]["taken_at"] == "manual" and p["sources"]["description"] == "sidecar"
    page.reload()
    page.locator(".pswp--open").wait_for()
    info.locator("dd.title").filter(has_text="Harbour at dusk").wait_for()
    assert "from XMP sidecar" in info.locator("dt", has_text="Description").inner_text()
    assert "UTC+05:30" in info.locator("dd.taken").inner_text()
    # on a phone the editor is a sheet over the lower half of the photo
    page.set_viewport_size(PHONE)
    info.get_by_role("button", name="Edit").click()
    page.locator("#edit-title").wait_for()
    assert page.input_value("#edit-title") == "Harbour at dusk" and page.input_value("#edit-offset") == "+05:30"
    page.screenshot(path=str(artifacts / "edit-phone.png"))
    assert not problems, problems
    ctx.close()


def test_a_viewer_sees_no_edit_control_and_the_api_refuses_the_edit(browser: Any, edit_daemon: Daemon) -> None:
    admin = edit_daemon.login()["access_token"]
    status, body = http_json("POST", f"{edit_daemon.base}/api/v1/users",
                             {"name": "vic", "role": "viewer", "password": PASSWORD}, token=admin)
    assert status == 201, body
    photo = photo_of(edit_daemon, admin, "camera/Nikon_D70.jpg")
    ctx, page, problems = new_page(browser, edit_daemon)
    login(page, "vic")
    page.goto(f"/?photo={photo['id']}")
    page.locator(".pswp[data-ready]").wait_for()  # its keys are bound
    page.get_by_role("button", name="Info").click()
    info = page.locator("aside.info")
    info.locator("dt", has_text="Taken").wait_for()
    page.keyboard.press("e")  # the editor's shortcut does nothing for a viewer...
    page.keyboard.press("i")  # ...as the keys that follow it show: they close and reopen the panel
    info.wait_for(state="detached")
    page.keyboard.press("i")
    info.locator("dt", has_text="Taken").wait_for()
    assert info.get_by_role("button", name=re.compile("^(Edit|Done)$")).count() == 0
    assert info.locator("input, textarea, form").count() == 0
    assert page.get_by_role("button", name="Favourite").count() == 0
    viewer = edit_daemon.login("vic")["access_token"]
    status, body = http_json("PATCH", f"{edit_daemon.base}/api/v1/photos/{photo['id']}", {"title": "mine"}, token=viewer)
    assert status == 403, body
    assert http_json("GET", f"{edit_daemon.base}/api/v1/photos/{photo['id']}", token=admin)[1]["title"] != "mine"
    assert not problems, problems
    ctx.close()
