"""New photos appear in an open timeline without a reload (the live socket), and the app's
generated API types match the daemon's OpenAPI document."""

from __future__ import annotations

import json
import subprocess
import uuid
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, login, new_page, tiles_shown
from tests.integration.api_support import PASSWORD, Daemon, http_json
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def upload(daemon: Daemon, token: str, path: Path, mime: str = "image/jpeg",
           *more: tuple[Path, str]) -> tuple[int, Any]:
    """POST /api/v1/uploads with one file or several (a Live Photo's still and video together)."""
    boundary = uuid.uuid4().hex
    body = b""
    for p, m in ((path, mime), *more):
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{p.name}\"\r\n"
                 f"Content-Type: {m}\r\n\r\n").encode() + p.read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{daemon.base}/api/v1/uploads", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, json.loads(resp.read())


def test_an_uploaded_photo_appears_in_the_open_timeline_without_a_reload(browser: Any, fresh_daemon: Daemon,
                                                                          samples: Path) -> None:
    status, _ = http_json("POST", f"{fresh_daemon.base}/api/v1/setup", {"username": "admin", "password": PASSWORD})
    assert status in (200, 201)
    ctx, page, problems = new_page(browser, fresh_daemon)
    login(page)
    page.get_by_text("No photos yet").wait_for()
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)
    token = fresh_daemon.login()["access_token"]
    status, answer = upload(fresh_daemon, token, samples / "exif-samples/jpg/Canon_40D.jpg")
    assert status in (200, 201, 202), answer
    wait_until(lambda: tiles_shown(page) == 1, timeout=30, what="the new photo in the timeline")
    assert page.locator("h2.month").first.inner_text() == "May 2008"
    assert navigations == [], "no reload"
    assert not problems, problems
    ctx.close()


def test_a_video_plays_in_the_lightbox_streamed_through_the_service_worker(browser: Any, fresh_daemon: Daemon,
                                                                           tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=3:size=320x240:rate=15",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(clip)], check=True, timeout=60)
    http_json("POST", f"{fresh_daemon.base}/api/v1/setup", {"username": "admin", "password": PASSWORD})
    status, answer = upload(fresh_daemon, fresh_daemon.login()["access_token"], clip, "video/mp4")
    assert status in (200, 201, 202), answer
    ctx, page, problems = new_page(browser, fresh_daemon)
    ranges: list[str] = []
    ctx.on("request", lambda r: ranges.append(r.headers.get("range", "")) if r.url.endswith("/original") else None)
    login(page)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=20_000)
    page.locator("a.tile").first.wait_for()
    page.locator("a.tile").first.click()
    video = page.locator(".pswp video")
    video.wait_for()
    wait_until(lambda: video.evaluate("v => v.readyState >= 1 && Math.round(v.duration)") == 3, timeout=20,
               what="the video's metadata")
    assert video.evaluate("v => v.src").endswith("/original"), "streamed, not downloaded into a blob"
    assert any(r.startswith("bytes=") for r in ranges), ranges
    assert not problems, problems
    ctx.close()


def test_a_live_photo_plays_its_video_while_live_is_held(browser: Any, fresh_daemon: Daemon, samples: Path,
                                                         tmp_path: Path) -> None:
    still = tmp_path / "IMG_0042.JPG"
    still.write_bytes((samples / "exif-samples/jpg/gps/DSCN0010.jpg").read_bytes())
    clip = tmp_path / "IMG_0042.MOV"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=15",
                    "-pix_fmt", "yuv420p", "-metadata", "creation_time=2008-10-22T16:28:39Z", "-f", "mov", str(clip)],
                   check=True, timeout=60)  # the still's date: uploads file both into the same month folder
    http_json("POST", f"{fresh_daemon.base}/api/v1/setup", {"username": "admin", "password": PASSWORD})
    token = fresh_daemon.login()["access_token"]
    status, answer = upload(fresh_daemon, token, still, "image/jpeg", (clip, "video/quicktime"))
    assert status in (200, 201, 202), answer
    wait_until(lambda: (http_json("GET", f"{fresh_daemon.base}/api/v1/photos", token=token)[1]["photos"] or [{}])[0]
               .get("type") == "live", timeout=30, what="the pair indexed as one Live Photo")
    ctx, page, problems = new_page(browser, fresh_daemon)
    login(page)
    page.locator("a.tile").first.click()
    live = page.get_by_role("button", name="LIVE")
    live.wait_for()
    live.hover()
    video = page.locator("video.live-video")
    video.wait_for()
    wait_until(lambda: video.evaluate("v => v.readyState >= 2 && Math.round(v.duration)") == 2, timeout=20,
               what="the Live Photo's video playing")
    page.mouse.move(5, 400)
    video.wait_for(state="detached")
    assert not problems, problems
    ctx.close()


def test_selecting_with_x_and_shift_click_then_archiving(browser: Any, fresh_daemon: Daemon, samples: Path) -> None:
    http_json("POST", f"{fresh_daemon.base}/api/v1/setup", {"username": "admin", "password": PASSWORD})
    token = fresh_daemon.login()["access_token"]
    jpg = samples / "exif-samples/jpg"
    status, answer = upload(fresh_daemon, token, jpg / "Canon_40D.jpg", "image/jpeg",
                            (jpg / "Nikon_D70.jpg", "image/jpeg"), (jpg / "Pentax_K10D.jpg", "image/jpeg"))
    assert status in (200, 201, 202), answer
    ctx, page, problems = new_page(browser, fresh_daemon)
    page.on("dialog", lambda d: d.accept())
    login(page)
    wait_until(lambda: tiles_shown(page) == 3, timeout=30)
    tiles = page.locator("a.tile")
    first, second = tiles.nth(0).get_attribute("data-photo"), tiles.nth(1).get_attribute("data-photo")
    tiles.nth(0).focus()
    page.keyboard.press("x")
    page.locator(f"a.tile[data-photo='{second}']").click(modifiers=["Shift"])
    page.get_by_text("2 selected").wait_for()
    assert "photo=" not in page.url  # selecting opens nothing
    page.get_by_role("button", name="Archive").click()
    wait_until(lambda: tiles_shown(page) == 1, what="the two archived photos gone from the timeline")
    page.locator("nav.side").get_by_role("link", name="Archive").click()
    wait_until(lambda: sorted(page.locator("a.tile").evaluate_all("els => els.map(e => e.dataset.photo)"))
               == sorted([first, second]), what="both in the archive")
    assert not problems, problems
    ctx.close()


def test_generated_api_types_match_the_daemons_openapi(sample_daemon: Daemon, tmp_path: Path) -> None:
    token = sample_daemon.login()["access_token"]
    status, doc = http_json("GET", f"{sample_daemon.base}/api/v1/openapi.json", token=token)
    assert status == 200
    (tmp_path / "openapi.json").write_text(json.dumps(doc))
    out = tmp_path / "schema.d.ts"
    subprocess.run(["node", "scripts/api-types.mjs", "--from", str(tmp_path / "openapi.json"), "--out", str(out)],
                   cwd=REPO / "web", check=True, capture_output=True, timeout=120)
    committed = (REPO / "web" / "src" / "api" / "schema.d.ts").read_text()
    assert out.read_text() == committed, "web/src/api/schema.d.ts is stale: run `npm run api:types` in web/"
