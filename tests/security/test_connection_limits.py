"""Issue 9, point 2: bounded work per connection on both ports, against the real `shoebox serve`.

Each test is the attack as a client on the network would make it, over real sockets:
- thousands of thumbnail requests pipelined on a few connections whose client never reads: the
  daemon's peak memory (VmHWM) stays bounded, other clients are served meanwhile, and the
  attacker still gets every answer once it reads;
- one address opening connection after connection: it hits its own limit, and another address
  (127.0.0.2, also loopback) still gets in; the total limit holds as well;
- slow-loris on the API port: headers or a body that never finish are cut off after the timeout;
- WebSockets that never authenticate: closed after the time limit, and only a few may wait.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest

from tests.integration.api_support import Daemon, clone, create_admin, http_json
from tests.waiting import wait_until, wait_until_async

# slow: each test attacks a real shoebox serve
pytestmark = pytest.mark.slow

SECOND_ADDRESS = "127.0.0.2"  # loopback too: a second client address on one machine


@pytest.fixture
def copy(indexed: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    library, data = clone(indexed, tmp_path)
    create_admin(library, data)
    return library, data


def peak_kib(pid: int, reset: bool = False) -> int:
    """The process's peak resident size (VmHWM); `reset` first sets it to the current size."""
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer (status, headers, body by Content-Length) from a raw socket."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before an answer: {raw!r}")
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body[:n]


def closed_by_server(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it stays open."""
    sock.settimeout(within)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {within} s (got {got[:200]!r})") from None
    return got


def count_answers(sock: socket.socket, n: int) -> Iterator[int]:
    """Statuses of the next n HTTP answers on a socket, read as a stream (bodies are skipped)."""
    buf = b""
    for _ in range(n):
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(buf) < length:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            buf += chunk
        buf = buf[length:]
        yield status


def biggest_cached_thumbnail(daemon: Daemon, tokens: dict[str, Any]) -> tuple[str, int]:
    """The URL of the biggest thumbnail the memory cache keeps (< 512 KiB), fetched once so it
    is in memory: the cheapest answer for the daemon to make and the costliest to hold."""
    status, page = http_json("GET", f"{daemon.base}/api/v1/photos?limit=20", token=tokens["access_token"])
    assert status == 200
    best = ("", 0)
    for photo in page["photos"]:
        for size in ("fit_1280", "fit_720"):
            url = f"/api/v1/t/{photo['thumb_key']}/{size}?t={tokens['thumb_token']}"
            with urllib.request.urlopen(daemon.thumbs_base + url, timeout=10) as r:
                n = len(r.read())
            if best[1] < n < 512 * 1024:
                best = (url, n)
    with urllib.request.urlopen(daemon.thumbs_base + best[0], timeout=10) as r:  # in the cache now
        assert r.status == 200
    return best


def test_pipelined_thumbnail_requests_hold_bounded_memory_and_others_are_served(copy: tuple[Path, Path]) -> None:
    with Daemon(*copy) as daemon:
        assert daemon.proc is not None
        tokens = daemon.login()
        url, size = biggest_cached_thumbnail(daemon, tokens)
        request = f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        connections, per_connection = 4, 2500
        unbounded_mib = connections * per_connection * size / 2**20
        assert unbounded_mib > 200, f"the attack would not show anything ({unbounded_mib:.0f} MiB)"
        before = peak_kib(daemon.proc.pid, reset=True)

        attackers, sent = [], []
        for _ in range(connections):
            sock = connect(daemon.thumbs_port, timeout=3)  # and it never reads
            payload = request * per_connection
            try:
                sock.sendall(payload)
                sent.append(per_connection)
            except TimeoutError:  # the daemon stopped reading: the kernel's buffers are full
                sent.append(-1)
            attackers.append(sock)

        # meanwhile another client gets its thumbnail and its API answers, promptly
        for _ in range(5):
            started = time.monotonic()
            with urllib.request.urlopen(daemon.thumbs_base + url, timeout=10) as r:
                assert r.status == 200 and len(r.read()) == size
            status, page = http_json("GET", f"{daemon.base}/api/v1/photos?limit=5", token=tokens["access_token"])
            assert status == 200 and page["photos"]
            assert time.monotonic() - started < 3
        status, body = http_json("GET", f"{daemon.base}/api/v1/status", token=tokens["access_token"])
        served = body["thumbnail_server"]["requests"]
        peak = peak_kib(daemon.proc.pid)
        growth_mib = (peak - before) / 1024
        print(f"\n{connections} x {per_connection} pipelined requests for a {size / 1024:.0f} KiB thumbnail "
              f"({unbounded_mib:.0f} MiB of answers): {served} answered so far, "
              f"VmHWM {before / 1024:.1f} -> {peak / 1024:.1f} MiB")
        assert growth_mib < 48, f"peak memory grew by {growth_mib:.0f} MiB under a pipelining client"
        assert served < connections * per_connection / 2, "the daemon answered what nobody was reading"

        # the attacker is not cut off either: once it reads, every answer comes, in order
        reader = attackers[0]
        reader.settimeout(20)
        if sent[0] > 0:
            statuses = list(count_answers(reader, per_connection))
            assert statuses == [200] * per_connection
        for sock in attackers:
            sock.close()
        assert (peak_kib(daemon.proc.pid) - before) / 1024 < 48


def test_one_address_cannot_take_every_connection(copy: tuple[Path, Path]) -> None:
    per_address, total = 4, 10
    with Daemon(*copy, "--server-max-connections-per-address", str(per_address),
                "--server-max-connections", str(total)) as daemon:
        token = daemon.login()["access_token"]
        for port, served_path in ((daemon.port, "/api/v1/health"), (daemon.thumbs_port, "/api/v1/health")):
            held = [connect(port) for _ in range(per_address)]
            # the next one from the same address: 503 in the API's JSON shape, and closed
            extra = connect(port)
            extra.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = read_answer(extra)
            assert status == 503 and json.loads(body)["error"] == "too_many_connections"
            assert "max_connections_per_address" in json.loads(body)["message"]
            assert headers.get("connection") == "close"
            extra.close()
            # another address is not locked out
            other = connect(port, SECOND_ADDRESS)
            other.sendall(f"GET {served_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status, _, _ = read_answer(other)
            assert status in (200, 404)  # the thumbnail port answers only thumbnails: 404 is an answer
            other.close()
            # a slot comes back when a connection closes
            held.pop().close()

            def admitted() -> bool:
                sock = connect(port)
                sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                ok = read_answer(sock)[0] != 503
                sock.close()
                return ok
            wait_until(admitted, timeout=10, what="a freed connection slot")
            for sock in held:
                sock.close()

        # the total holds too: 4 + 4 + 2 from three addresses, then nobody else
        def fill() -> list[socket.socket]:
            socks = [connect(daemon.port, f"127.0.0.{1 + i // per_address}") for i in range(total)]
            for sock in socks:  # each one answered: admitted and counted
                sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert read_answer(sock)[0] == 200
            return socks
        held = wait_until(fill, timeout=10, what="ten admitted connections")
        late = connect(daemon.port, "127.0.0.9")
        late.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = read_answer(late)
        assert status == 503 and "server.max_connections" in json.loads(body)["message"]
        for sock in [late, *held]:
            sock.close()
        assert http_json("GET", f"{daemon.base}/api/v1/photos?limit=1", token=token)[0] == 200


def test_slow_loris_on_the_api_port_is_cut_off(copy: tuple[Path, Path]) -> None:
    timeout = 2.0
    with Daemon(*copy, "--server-header-timeout", str(timeout), "--server-body-timeout", str(timeout)) as daemon:
        # headers one line at a time, never finished: 408 and closed, however steady the drip
        sock = connect(daemon.port)
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        sock.settimeout(0.3)
        got = b""
        for i in range(100):
            try:
                sock.sendall(b"X-Drip-%d: 1\r\n" % i)
                got = sock.recv(65536)
            except TimeoutError:
                continue  # still open: drip on
            except (BrokenPipeError, ConnectionResetError):
                break
            if got == b"" or got.startswith(b"HTTP/"):
                break
        elapsed = time.monotonic() - started
        assert got.startswith(b"HTTP/1.1 408"), got[:200]
        assert json.loads(got.partition(b"\r\n\r\n")[2])["error"] == "timeout"
        assert timeout - 0.5 < elapsed < timeout + 2.5, elapsed
        sock.close()

        # a body that stops arriving: closed after the body timeout
        sock = connect(daemon.port)
        sock.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n{\"username\": ")
        started = time.monotonic()
        closed_by_server(sock, within=timeout + 3)
        assert time.monotonic() - started > timeout - 0.5
        sock.close()

        # a connection that sends nothing at all is closed as idle; normal requests are untouched
        sock = connect(daemon.port)
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock)[0] == 200
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # keep-alive still works
        assert read_answer(sock)[0] == 200
        sock.close()
        assert http_json("GET", f"{daemon.base}/api/v1/health")[0] == 200


async def test_unauthenticated_websockets_are_limited_in_number_and_time(copy: tuple[Path, Path]) -> None:
    with Daemon(*copy) as daemon:
        url = f"ws://127.0.0.1:{daemon.port}/api/v1/live"
        async with aiohttp.ClientSession() as first, aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(SECOND_ADDRESS, 0))) as second:
            started = time.monotonic()
            waiting = [await first.ws_connect(url) for _ in range(4)]  # none of them says who it is
            try:
                await first.ws_connect(url)
                raise AssertionError("a fifth unauthenticated socket from one address was let in")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 503
            other = await second.ws_connect(url)  # another address still may
            # every one of them is closed within the auth time limit (5 s), with 4401
            for ws in [*waiting, other]:
                msg = await ws.receive(timeout=10)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 4401
            assert time.monotonic() - started < 9
            for ws in [*waiting, other]:
                await ws.close()

            # the slots are free again
            async def admitted() -> bool:
                try:
                    ws = await first.ws_connect(url)
                except aiohttp.WSServerHandshakeError:
                    return False
                await ws.close()
                return True
            await wait_until_async(admitted, timeout=10, what="a free slot for an unauthenticated socket")
