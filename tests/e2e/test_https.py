"""HTTPS on the LAN in a real browser (issue 13, point 1): Debian's chromium opens the app at
`https://<hostname>.local:<port>/` (the machine's own `.local` name, mapped to 127.0.0.1 as mDNS
would), with the generated server certificate, logs in, shows thumbnails from the HTTPS thumbnail
port, and registers the service worker, which browsers allow only in a secure context. A plain
`http://` address lands on the HTTPS app through the 308 redirect.

The browser is told to accept the server certificate by its public key
(`--ignore-certificate-errors-spki-list`, honoured for that key only): installing the CA into a
throw-away NSS database would need libnss3-tools. That the certificate chains to the local CA and
names the host is checked with Python's ssl and curl in tests/integration/test_https.py.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.e2e.conftest import ARGS, CHROMIUM, DESKTOP, _require_built_app, login, tiles_shown
from tests.integration.api_support import build_indexed, create_admin
from tests.integration.test_https import HttpsDaemon
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

LOCAL_NAME = socket.gethostname().lower().split(".")[0] + ".local"  # what zeroconf announces


def spki_hash(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture()
def https_daemon(tmp_path: Path, samples: Path) -> Iterator[HttpsDaemon]:
    with ThreadPoolExecutor(1) as pool:  # the indexer runs its own event loop
        library, data = pool.submit(build_indexed, samples, tmp_path).result()
    create_admin(library, data)
    with HttpsDaemon(library, data) as d:
        yield d


def test_the_app_on_a_local_name_over_https_registers_its_service_worker(browser: Any, https_daemon: HttpsDaemon) -> None:
    _require_built_app()
    d = https_daemon
    cert = d.data / "tls" / "server.crt"
    assert LOCAL_NAME in {n.value for n in x509.load_pem_x509_certificate(cert.read_bytes())
                          .extensions.get_extension_for_class(x509.SubjectAlternativeName).value}
    origin = f"https://{LOCAL_NAME}:{d.port}"
    # a browser of its own (its flags map the name and accept the key), from the session's
    # Playwright: a second sync_playwright() cannot start while that one's loop runs
    own = browser.browser_type.launch(executable_path=CHROMIUM, args=[
        *ARGS, f"--host-resolver-rules=MAP {LOCAL_NAME} 127.0.0.1",
        f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"])
    try:
        ctx = own.new_context(viewport=DESKTOP, base_url=origin)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" and (
            "Content Security Policy" in m.text or "Uncaught" in m.text or "ERR_CERT" in m.text) else None)

        # an old http:// bookmark on the plain port lands on the HTTPS app
        page.goto(f"http://{LOCAL_NAME}:{d.http_port}/login")
        assert page.url == f"{origin}/login"
        assert page.evaluate("() => window.isSecureContext") is True

        login(page)
        wait_until(lambda: tiles_shown(page) == 5, what="thumbnails over HTTPS")
        thumbs = page.evaluate("() => [...document.querySelectorAll('a.tile img')].map(i => i.currentSrc)")
        assert all(src.startswith(f"{origin}/api/v1/t/") for src in thumbs), thumbs
        # the same thumbnail from the thumbnail port: the browser accepts its TLS, the page's
        # content security policy allows it (https://<name>:<thumbnail port>)
        other = thumbs[0].replace(f":{d.port}/", f":{d.thumbs_port}/", 1)
        size = page.evaluate("""src => new Promise(done => { const i = new Image();
            i.onload = () => done(i.naturalWidth); i.onerror = () => done(-1); i.src = src; })""", other)
        assert size > 0, other

        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=20_000)
        scope = page.evaluate("async () => (await navigator.serviceWorker.getRegistration()).scope")
        assert scope == f"{origin}/"
        page.reload()  # now through the worker
        wait_until(lambda: tiles_shown(page) == 5)
        assert page.evaluate("() => navigator.serviceWorker.controller.scriptURL") == f"{origin}/sw.js"
        assert not problems, problems
        ctx.close()
    finally:
        own.close()
