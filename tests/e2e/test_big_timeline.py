"""The web app on a generated 5,000-photo library: the virtual timeline keeps the DOM small from
top to bottom and back, the scrubber jumps to a month, the map clusters offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DESKTOP, PHONE, login, new_page
from tests.integration.api_support import Daemon, http_json
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
DOM_LIMIT = 3000


def nodes(page: Any) -> int:
    return page.evaluate("() => document.getElementsByTagName('*').length")


def months_of(daemon: Daemon) -> list[dict[str, Any]]:
    status, body = http_json("GET", f"{daemon.base}/api/v1/timeline/months", token=daemon.login()["access_token"])
    assert status == 200 and body["total"] > 4800, body  # the generator archives or hides ~2 %
    return body["months"]


def test_scrolling_5000_photos_to_the_bottom_and_back_keeps_the_dom_bounded(browser: Any, big_daemon: Daemon,
                                                                           artifacts: Path) -> None:
    months = months_of(big_daemon)
    ctx, page, problems = new_page(browser, big_daemon, DESKTOP)
    login(page)
    page.locator("a.tile").first.wait_for()
    scroller = page.locator(".timeline .scroller")
    height = scroller.evaluate("el => el.scrollHeight")
    view = scroller.evaluate("el => el.clientHeight")
    assert height > 50 * view, "the scroll height covers the whole library before it is loaded"
    peak = nodes(page)
    # a fling: jump several screens a frame, as a fast thumb does, and count the DOM after each frame
    step = """async (y) => {
        const el = document.querySelector('.timeline .scroller');
        el.scrollTop = y;
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        return [document.getElementsByTagName('*').length, el.scrollHeight, el.scrollTop];
    }"""
    y, frames = 0, 0
    while y < height - view - 2 and frames < 2000:
        count, height, y = page.evaluate(step, min(y + view * 6, height))
        peak, frames = max(peak, count), frames + 1
    # at the bottom: the oldest month is on screen, with its photos
    page.locator(f"h2.month[data-month='{months[-1]['month']}']").wait_for()
    wait_until(lambda: page.locator("a.tile").count() > 0, what="tiles of the oldest month")
    page.screenshot(path=str(artifacts / "big-bottom-desktop.png"))
    # and back to the top
    while y > 0 and frames < 4000:
        count, height, y = page.evaluate(step, max(0, y - view * 6))
        peak, frames = max(peak, count), frames + 1
    page.locator(f"h2.month[data-month='{months[0]['month']}']").wait_for()
    print(f"peak DOM nodes while scrolling 5,000 photos: {peak} ({frames} frames)")
    assert peak < DOM_LIMIT, f"{peak} DOM nodes at most while scrolling 5,000 photos"
    assert not problems, problems
    ctx.close()


def test_the_scrubber_jumps_to_a_month(browser: Any, big_daemon: Daemon, artifacts: Path) -> None:
    months = months_of(big_daemon)
    ctx, page, problems = new_page(browser, big_daemon, PHONE, device_scale_factor=2)
    login(page)
    page.locator("a.tile").first.wait_for()
    scrubber = page.get_by_role("slider", name="Jump to a month")
    box = scrubber.bounding_box()
    assert box is not None
    # press in the middle of the scrubber: the timeline jumps about half way
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.5)
    target = scrubber.get_attribute("aria-valuetext")
    index = int(scrubber.get_attribute("aria-valuenow"))
    assert len(months) * 0.25 < index < len(months) * 0.75, (index, len(months))
    wait_until(lambda: page.locator("a.tile").count() > 0, what="tiles after the jump")
    header = page.locator(f"h2.month[data-month='{months[index]['month']}']")
    header.wait_for()
    assert header.inner_text() == target
    # the month starts at the top of the screen and stays there while the months around it load
    wait_until(lambda: page.locator(f"a.tile").count() > 3)
    top = page.locator(".timeline .scroller").evaluate("el => el.getBoundingClientRect().top")
    wait_until(lambda: abs(header.evaluate("h => h.getBoundingClientRect().top") - top) < 2, timeout=5,
               what="the month's header at the top of the timeline")
    page.screenshot(path=str(artifacts / "scrubber-phone.png"))
    # the keyboard: End goes to the oldest month
    scrubber.focus()
    page.keyboard.press("End")
    oldest = page.locator(f"h2.month[data-month='{months[-1]['month']}']")
    oldest.wait_for()
    # another view and back: the timeline is where it was
    page.locator("nav.bottom").get_by_role("link", name="Albums").click()
    page.get_by_role("heading", name="Albums").wait_for()
    page.go_back()
    oldest.wait_for()
    assert oldest.is_visible()
    assert not problems, problems
    ctx.close()


def test_the_map_shows_clusters_with_no_network_but_the_daemon(browser: Any, big_daemon: Daemon, artifacts: Path) -> None:
    ctx, page, problems = new_page(browser, big_daemon, DESKTOP)
    outside: list[str] = []

    def only_the_daemon(route: Any) -> None:
        if route.request.url.startswith(big_daemon.base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_the_daemon)
    login(page)
    page.goto("/map")
    page.locator(".maplibregl-marker.cluster, .maplibregl-marker .cluster, button.cluster").first.wait_for(timeout=30_000)
    counts = [int(c) for c in page.locator("button.cluster").evaluate_all("els => els.map(e => e.dataset.count)")]
    assert counts and max(counts) > 1
    page.screenshot(path=str(artifacts / "map-clusters-desktop.png"))
    # a cluster opens the list of its photos
    page.locator("button.cluster").first.click()
    page.locator("aside.picked li").first.wait_for()
    assert page.locator("aside.picked li").count() >= 2
    assert outside == [], outside
    assert not problems, problems
    ctx.close()
