"""Helpers for the API tests: a real indexed sample library, a real App on a real SQLite file,
and an in-process aiohttp server in front of it (or the real `shoebox serve` in a subprocess)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from aiohttp.test_utils import TestClient, TestServer

from daemon.api.server import make_web_app
from daemon.app import App
from daemon.auth import accounts, passwords
from daemon.auth.roles import Role
from daemon.config import Config
from tests.conftest import copy_sample
from tests.integration.support import REPO, SHOEBOX, free_port, index, make_config, seed_places, shoebox
from tests.waiting import wait_until

SAMPLE_PHOTOS = (
    "exif-samples/jpg/Canon_40D.jpg",
    "exif-samples/jpg/Nikon_D70.jpg",
    "exif-samples/jpg/gps/DSCN0010.jpg",  # GPS: Tuscany, Italy
    "exif-samples/jpg/Pentax_K10D.jpg",
    "exif-samples/jpg/Sony_HDR-HC3.jpg",
)
PASSWORD = "correct horse battery"


def settings(**extra: Any) -> dict[str, Any]:
    """Test settings: no tagging (these tests are about the API, not the models)."""
    return {"tagging__enabled": "false", **extra}


def build_indexed(samples: Path, root: Path) -> tuple[Path, Path]:
    """(library, data) with the sample photos indexed by the real indexer."""
    library, data = root / "library", root / "data"
    for rel in SAMPLE_PHOTOS:
        copy_sample(samples, rel, library / ("gps" if "/gps/" in rel else "camera"))
    asyncio.run(index(make_config(library, data, **settings())))
    return library, data


def clone(source: tuple[Path, Path], root: Path) -> tuple[Path, Path]:
    """A private copy of an indexed library and its data, for a test that changes things."""
    library, data = root / "library", root / "data"
    shutil.copytree(source[0], library, copy_function=shutil.copy2)
    shutil.copytree(source[1], data, ignore=shutil.ignore_patterns("shoebox.lock"))
    return library, data


@asynccontextmanager
async def api(config: Config) -> AsyncIterator[tuple[App, TestClient]]:
    """A started App and a client of its web app on a real loopback port."""
    app = App(config)
    await app.start()
    client = TestClient(TestServer(make_web_app(app)))
    try:
        await client.start_server()
        yield app, client
    finally:
        await client.close()
        await app.stop()


async def add_user(app: App, name: str, role: Role | str, password: str = PASSWORD) -> None:
    hashed = passwords.hash_password(password)
    assert app.db is not None
    await app.db.write(lambda c: accounts.create_user(c, name, Role(role), hashed))


async def login(client: TestClient, name: str, password: str = PASSWORD) -> dict[str, Any]:
    r = await client.post("/api/v1/auth/login", json={"username": name, "password": password})
    assert r.status == 200, await r.text()
    return await r.json()


def auth(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def photo_ids(app: App) -> dict[str, str]:
    """photo uid by file name."""
    assert app.db is not None
    rows = await app.db.fetchall("SELECT p.uid, f.path_text FROM photos p JOIN files f ON f.id = p.primary_file_id")
    return {Path(r["path_text"]).name: r["uid"] for r in rows}


@asynccontextmanager
async def events_of(app: App) -> AsyncIterator[list[dict[str, Any]]]:
    """Every event the bus publishes while inside, as {type, data} (the live-update stream)."""
    assert app.events is not None
    seen: list[dict[str, Any]] = []

    async def listen() -> None:
        async for event in app.events.bus.stream():
            seen.append({"type": event.type, "data": event.data})

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.01)  # the listener task subscribes in its first step
    try:
        yield seen
    finally:
        await app.events.bus.flush()
        await asyncio.sleep(0.05)  # what the flush delivered reaches the listener before it is cancelled
        task.cancel()


# -- the real daemon in a subprocess ------------------------------------------------------------------


def create_admin(library: Path, data: Path, name: str = "admin", password: str = PASSWORD) -> None:
    """`shoebox users add NAME --role admin --password-stdin`, as an operator would."""
    shoebox("users", "add", name, "--role", "admin", "--password-stdin", "--library", str(library),
            "--data", str(data), input=password + "\n")


def http_json(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Daemon:
    """`shoebox serve` on a free loopback port; `with Daemon(...) as d: d.base ...`.

    Its stderr goes to a file (a pipe nobody reads would stall a chatty daemon); at the end the
    test fails if the log shows an asyncio task whose exception nobody retrieved."""

    def __init__(self, library: Path, data: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.library, self.data, self.extra = library, data, extra
        self.extra_env = env or {}
        self.stderr_file = tempfile.TemporaryFile()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.thumbs_port = free_port()
        self.thumbs_base = f"http://127.0.0.1:{self.thumbs_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Daemon":
        seed_places(self.data)
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("SHOEBOX_")}
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [*SHOEBOX, "serve", "--library", str(self.library), "--data", str(self.data), "--server-host",
             "127.0.0.1", "--server-port", str(self.port), "--server-thumbnail-port", str(self.thumbs_port), "--workers", "2", "--index-watch", "false",
             "--tagging-enabled", "false", "--zeroconf-enabled", "false", "--server-https", "false", *self.extra],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr_file)
        proc = self.proc

        def healthy() -> bool:
            try:
                if http_json("GET", f"{self.base}/api/v1/health")[0] == 200:
                    return True
            except OSError:
                pass
            if proc.poll() is not None:
                raise AssertionError(f"shoebox serve exited: {self.stderr()[-3000:]}")
            return False

        try:
            wait_until(healthy, 60, interval=0.1, what="shoebox serve to answer /health")
        except AssertionError:
            self.__exit__()
            raise
        return self

    def stderr(self) -> str:
        """Everything the daemon logged so far."""
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = self.stderr()
        failing = bool(exc) and exc[0] is not None  # do not hide the test's own failure
        if "exception was never retrieved" in log and not failing:
            raise AssertionError("an asyncio task in shoebox serve failed unseen:\n"
                                 + log[log.index("exception was never retrieved") - 200:][:3000])

    def login(self, name: str = "admin", password: str = PASSWORD) -> dict[str, Any]:
        status, body = http_json("POST", f"{self.base}/api/v1/auth/login", {"username": name, "password": password})
        assert status == 200, body
        return body

    def app_token(self, access_token: str, scopes: list[str], name: str = "tests") -> str:
        status, body = http_json("POST", f"{self.base}/api/v1/auth/tokens", {"name": name, "scopes": scopes},
                                 token=access_token)
        assert status == 201, body
        return body["token"]
