"""zeroconf as a phone or Home Assistant would find Shoebox: a python-zeroconf browser (on the
loopback interface, the only network a test machine is sure to have) looks for `_http._tcp` and
`_shoebox._tcp` while the real `shoebox serve` runs, and reads their TXT records.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import pytest
from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from daemon import __version__
from tests.integration.support import free_port, query
from tests.integration.test_events_helpers import serve, stop

# slow: each test runs a real shoebox serve and browses for it
pytestmark = pytest.mark.slow

TYPES = ["_http._tcp.local.", "_shoebox._tcp.local."]


async def browse(seconds: float, wanted: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {t: [] for t in TYPES}
    gone: list[str] = []

    def changed(zeroconf, service_type, name, state_change):  # type: ignore[no-untyped-def]
        if state_change is ServiceStateChange.Added:
            found[service_type].append(name)
        elif state_change is ServiceStateChange.Removed:
            gone.append(name)

    zc = AsyncZeroconf(interfaces=["127.0.0.1"])
    browser = AsyncServiceBrowser(zc.zeroconf, TYPES, handlers=[changed])
    # Not wait_until: running out of time is an answer here ("nothing found" proves a withdrawal)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sum(len(v) for v in found.values()) < wanted:
        await asyncio.sleep(0.1)
    infos = {}
    for service_type, names in found.items():
        for name in names:
            info = AsyncServiceInfo(service_type, name)
            assert await info.async_request(zc.zeroconf, 3000), f"no answer for {name}"
            infos[name] = info
    await browser.async_cancel()
    await zc.async_close()
    return {name: [info.port, {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
                   info.parsed_addresses()] for name, info in infos.items()}  # type: ignore[misc]


async def test_a_browser_finds_both_services_with_their_txt_records(library: Path, tmp_path: Path) -> None:
    port, thumbs_port = free_port(), free_port()
    data = tmp_path / "data"
    proc = serve(library, data, None, "--zeroconf-enabled", "true", "--zeroconf-interfaces", "127.0.0.1",
                 "--zeroconf-name", "Shoebox test", http_port=port, thumbs_port=thumbs_port, log=tmp_path / "serve.log")
    try:
        found = await browse(30, wanted=2)
        assert set(found) == {"Shoebox test._http._tcp.local.", "Shoebox test._shoebox._tcp.local."}, found
        instance = query(data, "SELECT value FROM meta WHERE key = 'instance.id'")[0][0]
        for name, (svc_port, txt, addresses) in found.items():
            assert svc_port == port and addresses == ["127.0.0.1"]
            assert txt == {"txtvers": "1", "path": "/", "version": __version__, "api": "/api/v1", "id": instance,
                           "thumbs": str(thumbs_port)}
        # what it points at is the web server, already answering
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as resp:
            assert resp.status == 200
    finally:
        assert stop(proc) == 0, (tmp_path / "serve.log").read_text()[-2000:]
    # withdrawn on shutdown: a new browser finds nothing
    assert await browse(3, wanted=1) == {}


async def test_a_taken_name_gets_a_number_instead_of_a_clash(library: Path, tmp_path: Path) -> None:
    procs = []
    try:
        for i in range(2):
            procs.append(serve(library / str(i), tmp_path / f"data{i}", None, "--zeroconf-enabled", "true",
                               "--zeroconf-interfaces", "127.0.0.1", "--zeroconf-name", "Twin",
                               log=tmp_path / f"serve{i}.log"))
            (library / str(i)).mkdir(exist_ok=True)
            if i == 0:  # the first one has its name before the second asks
                assert len(await browse(30, wanted=2)) == 2, "the first daemon never announced itself"
        found = await browse(30, wanted=4)
        http = sorted(n for n in found if n.endswith("._http._tcp.local."))
        assert http == ["Twin-2._http._tcp.local.", "Twin._http._tcp.local."], found
        assert len({txt["id"] for _, txt, _ in found.values()}) == 2, "two libraries, two ids"
    finally:
        for p in procs:
            stop(p)
