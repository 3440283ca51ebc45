"""Issue 9, point 5: a web page in some browser in the house gets nowhere, against the real
`shoebox serve` over real sockets.

- Cross-site requests (a form, a text/plain fetch, `Origin: http://evil.example`,
  `Sec-Fetch-Site: cross-site`, `Origin: null`) cannot run first-run setup, log in, or change
  anything, and cannot open the live WebSocket; the same requests from the daemon's own origin,
  and scripts without an Origin (curl, a Bearer token), still work.
- DNS rebinding: a request that names a host the daemon does not know is refused on both ports;
  its own names (`<hostname>.local`, the host name, localhost, its addresses) and the configured
  `server.hostnames` are answered.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api_support import PASSWORD, Daemon, clone, create_admin, http_json

# slow: each test runs a real shoebox serve
pytestmark = pytest.mark.slow

EVIL = "http://evil.example"


def call(port: int, method: str, path: str, body: bytes | str | dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request with exactly these headers (Host included when given): (status, JSON or None)."""
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def refused_cross_site(answer: tuple[int, Any]) -> bool:
    status, body = answer
    return status == 403 and isinstance(body, dict) and body["error"] == "cross_site_request" and body["message"]


def own_origin(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.port}"


def test_first_run_setup_refuses_cross_site_requests(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = clone(indexed, tmp_path)  # no admin yet: setup is open
    with Daemon(library, data) as daemon:
        port = daemon.port
        admin = {"username": "mallory", "password": PASSWORD}
        form = "username=mallory&password=correct+horse+battery"
        attempts = [
            call(port, "POST", "/api/v1/setup", form, {"Content-Type": "application/x-www-form-urlencoded"}),
            call(port, "POST", "/api/v1/setup", json.dumps(admin), {"Content-Type": "text/plain"}),  # the JSON-in-a-form trick
            call(port, "POST", "/api/v1/setup", admin, {"Origin": EVIL}),
            call(port, "POST", "/api/v1/setup", admin, {"Origin": "null"}),  # a sandboxed frame, a file:// page
            call(port, "POST", "/api/v1/setup", admin, {"Sec-Fetch-Site": "cross-site"}),
            call(port, "POST", "/api/v1/setup", admin, {"Origin": f"http://127.0.0.1:{daemon.thumbs_port}"}),  # another port
        ]
        assert all(refused_cross_site(a) for a in attempts), attempts
        assert http_json("GET", f"{daemon.base}/api/v1/setup") == (200, {"needed": True})
        # the daemon's own page (same origin) sets it up
        status, body = call(port, "POST", "/api/v1/setup", {"username": "ann", "password": PASSWORD},
                            {"Origin": own_origin(daemon), "Sec-Fetch-Site": "same-origin"})
        assert status == 201 and body["name"] == "ann"
        assert http_json("GET", f"{daemon.base}/api/v1/setup") == (200, {"needed": False})


def test_login_and_changes_refuse_cross_site_requests_and_scripts_still_work(
        indexed: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = clone(indexed, tmp_path)
    create_admin(library, data)
    with Daemon(library, data) as daemon:
        port = daemon.port
        creds = {"username": "admin", "password": PASSWORD}
        for answer in (
            call(port, "POST", "/api/v1/auth/login", "username=admin&password=correct+horse+battery",
                 {"Content-Type": "application/x-www-form-urlencoded"}),
            call(port, "POST", "/api/v1/auth/login", json.dumps(creds), {"Content-Type": "text/plain"}),
            call(port, "POST", "/api/v1/auth/login", creds, {"Origin": EVIL}),
            call(port, "POST", "/api/v1/auth/login", creds, {"Sec-Fetch-Site": "same-site"}),
        ):
            assert refused_cross_site(answer), answer
        # a script (no Origin) and the daemon's own page log in
        status, tokens = call(port, "POST", "/api/v1/auth/login", creds)
        assert status == 200 and tokens["access_token"]
        status, _ = call(port, "POST", "/api/v1/auth/login", creds,
                         {"Origin": own_origin(daemon), "Sec-Fetch-Site": "same-origin"})
        assert status == 200
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

        photo = http_json("GET", f"{daemon.base}/api/v1/photos?limit=1", token=tokens["access_token"])[1]["photos"][0]
        path = f"/api/v1/photos/{photo['id']}"
        # a PATCH from another site's page is refused even with a token, and changes nothing
        answer = call(port, "PATCH", path, {"title": "pwned"}, {**bearer, "Origin": EVIL})
        assert refused_cross_site(answer), answer
        answer = call(port, "DELETE", f"/api/v1/auth/sessions/{'0' * 16}", None, {**bearer, "Origin": EVIL})
        assert refused_cross_site(answer), answer
        assert call(port, "GET", path, None, bearer)[1].get("title") != "pwned"
        # the same PATCH from a script, or from the daemon's own page, goes through
        status, _ = call(port, "PATCH", path, {"title": "from a script"}, bearer)
        assert status == 200
        status, _ = call(port, "PATCH", path, {"title": "from the app"}, {**bearer, "Origin": own_origin(daemon)})
        assert status == 200
        assert call(port, "GET", path, None, bearer)[1]["title"] == "from the app"

        # the live WebSocket cannot be opened from another site's page
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
                   "Sec-WebSocket-Version": "13"}
        assert refused_cross_site(call(port, "GET", "/api/v1/live", None, {**upgrade, "Origin": EVIL}))
        # a multipart body without a token or X-Shoebox-Request is refused before anything else on a
        # public route; with the header it reaches the view (which then says what is wrong with it)
        multipart = {"Content-Type": "multipart/form-data; boundary=x"}
        body = "--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nadmin\r\n--x--\r\n"
        assert refused_cross_site(call(port, "POST", "/api/v1/auth/login", body, multipart))
        status, answer = call(port, "POST", "/api/v1/auth/login", body, {**multipart, "X-Shoebox-Request": "1"})
        assert status in (400, 415, 422), (status, answer)
        # an upload without credentials is simply not logged in (401), as before
        assert call(port, "POST", "/api/v1/uploads", body, multipart)[0] == 401


def test_only_known_host_names_are_answered_on_both_ports(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    library, data = clone(indexed, tmp_path)
    create_admin(library, data)
    with Daemon(library, data, "--server-hostnames", "photos.example.com, nas.lan") as daemon:
        tokens = daemon.login()
        photo = http_json("GET", f"{daemon.base}/api/v1/photos?limit=1", token=tokens["access_token"])[1]["photos"][0]
        thumb = f"/api/v1/t/{photo['thumb_key']}/tile_224?t={tokens['thumb_token']}"
        label = socket.gethostname().split(".")[0].lower()
        for bad in ("evil.example", f"evil.example:{daemon.port}", "127.0.0.1.nip.io", "shoebox.local.evil.example"):
            for port, path in ((daemon.port, "/api/v1/health"), (daemon.thumbs_port, thumb)):
                status, body = call(port, "GET", path, None, {"Host": bad})
                assert status == 421 and body["error"] == "unknown_host", (bad, port, status, body)
                assert "server.hostnames" in body["message"]
        for good in (f"{label}.local:{daemon.port}", f"{label.upper()}.LOCAL.", socket.gethostname(), "localhost",
                     f"127.0.0.1:{daemon.port}", "[::1]", "photos.example.com", "nas.lan:8420"):
            status, _ = call(daemon.port, "GET", "/api/v1/health", None, {"Host": good})
            assert status == 200, good
            status, body = call(daemon.thumbs_port, "GET", thumb, None, {"Host": good})
            assert status == 200 and body[:2] == b"\xff\xd8", good
        # behind a reverse proxy with a configured name, the browser's own origin is that name
        status, _ = call(daemon.port, "POST", "/api/v1/auth/login", {"username": "admin", "password": PASSWORD},
                         {"Host": "127.0.0.1", "Origin": "https://photos.example.com"})
        assert status == 200
