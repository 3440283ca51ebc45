"""HTTPS on the LAN (issue 13, point 1): the local CA and its server certificate, verified by real
clients (Python's ssl, curl) against a real `shoebox serve`; the plain-HTTP port's redirect, health
and CA download; private keys 0600 and never served; renewal when the addresses change (the
decision, the files, and a running server's context); a user certificate replacing the generated
one; X-Forwarded-* believed only from configured proxies."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import ipaddress
import json
import os
import socket
import ssl
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from daemon.system.tls import (LocalCertificates, ServerTls, identity_of, local_identity, make_ca, make_server_cert,
                               renewal_reason)
from tests.integration.api_support import PASSWORD, Daemon, add_user, api, auth, create_admin, settings
from tests.integration.support import free_port, make_config, shoebox
from tests.waiting import wait_until_async

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc)


def san_of(cert: x509.Certificate) -> set[str]:
    ident = identity_of(cert)
    return set(ident.names) | set(ident.addresses)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def client_context(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))  # verifies the chain and the host name


# -- the renewal decision (pure) --------------------------------------------------------------------


def test_renewal_is_decided_by_the_address_set_the_expiry_and_the_ca() -> None:
    ca_key, ca = make_ca("shoebox", NOW)
    home = local_identity("shoebox", ["127.0.0.1", "::1", "192.168.1.20"])
    _, cert = make_server_cert(ca_key, ca, home, NOW)
    assert san_of(cert) == {"shoebox.local", "shoebox", "localhost", "127.0.0.1", "::1", "192.168.1.20"}
    assert renewal_reason(cert, ca, home, NOW) is None
    assert renewal_reason(cert, ca, local_identity("shoebox", ["::1", "127.0.0.1", "192.168.1.20"]), NOW) is None

    moved = local_identity("shoebox", ["127.0.0.1", "::1", "192.168.1.21"])  # a new DHCP lease
    reason = renewal_reason(cert, ca, moved, NOW)
    assert reason is not None and "+192.168.1.21" in reason and "-192.168.1.20" in reason
    renamed = local_identity("shoebox-2a4f", ["127.0.0.1", "::1", "192.168.1.20"])
    assert "+shoebox-2a4f.local" in (renewal_reason(cert, ca, renamed, NOW) or "")

    assert renewal_reason(cert, ca, home, NOW + dt.timedelta(days=360)) is None
    assert "expires" in (renewal_reason(cert, ca, home, NOW + dt.timedelta(days=368)) or "")  # < 30 days left
    assert cert.not_valid_after_utc - NOW <= dt.timedelta(days=398)  # what browsers accept

    # names from server.hostnames (a name in the house's DNS, an address) are named too; "*" is not
    extra = local_identity("shoebox", ["127.0.0.1"], ["photos.lan", " 192.168.7.7", "*"])
    assert {"photos.lan", "shoebox.local"} <= set(extra.names) and "192.168.7.7" in extra.addresses
    assert "*" not in extra.names

    _, other_ca = make_ca("shoebox", NOW)
    assert "not signed" in (renewal_reason(cert, other_ca, home, NOW) or "")
    assert renewal_reason(None, ca, home, NOW) is not None


# -- the files ----------------------------------------------------------------------------------------


def test_first_start_makes_the_ca_and_a_certificate_then_renews_only_when_the_addresses_change(tmp_path: Path) -> None:
    addresses = ["127.0.0.1", "::1", "10.1.2.3"]
    certs = LocalCertificates(tmp_path / "tls", hostname="shoebox", addresses=lambda: list(addresses))
    assert certs.ensure() is not None
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((tmp_path / "tls" / key).stat().st_mode) == 0o600, key
        assert b"PRIVATE KEY" in (tmp_path / "tls" / key).read_bytes()
    ca, first = load(certs.ca_cert), load(certs.cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Shoebox local CA shoebox"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "10.1.2.3" in san_of(first) and "shoebox.local" in san_of(first)
    ca_bytes, key_bytes = certs.ca_cert.read_bytes(), certs.key.read_bytes()

    assert certs.ensure() is None  # a restart: nothing to do
    assert load(certs.cert).serial_number == first.serial_number

    addresses[2] = "10.1.2.4"
    reason = certs.ensure()
    assert reason is not None and "10.1.2.4" in reason
    renewed = load(certs.cert)
    assert renewed.serial_number != first.serial_number and "10.1.2.4" in san_of(renewed)
    assert "10.1.2.3" not in san_of(renewed)
    renewed.verify_directly_issued_by(ca)
    assert certs.ca_cert.read_bytes() == ca_bytes  # the CA the devices trust stays
    assert certs.key.read_bytes() != key_bytes  # a new key with each certificate
    assert stat.S_IMODE(certs.key.stat().st_mode) == 0o600

    os.chmod(certs.ca_key, 0o644)  # a copy left it readable: tightened at the next start
    certs.ensure()
    assert stat.S_IMODE(certs.ca_key.stat().st_mode) == 0o600


async def test_a_running_server_hands_out_the_renewed_certificate_without_a_restart(tmp_path: Path) -> None:
    addresses = ["127.0.0.1", "::1", "10.1.2.3"]
    local = LocalCertificates(tmp_path / "tls", hostname="shoebox", addresses=lambda: list(addresses))
    tls = ServerTls(local, local.cert, local.key)
    context = await asyncio.to_thread(tls.prepare)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    client = client_context(local.ca_cert)

    async def served_addresses() -> set[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="shoebox.local")
        peer = writer.get_extra_info("ssl_object").getpeercert()
        writer.close()
        return {value for kind, value in peer["subjectAltName"] if kind == "IP Address"}

    watcher = asyncio.create_task(tls.watch(interval=0.05))  # what start_server runs (every 60 s)
    try:
        assert "10.1.2.3" in await served_addresses()
        first = local.cert.read_bytes()
        assert await asyncio.to_thread(tls.check) is None and local.cert.read_bytes() == first  # nothing changed
        addresses[2] = "10.1.2.9"  # a new DHCP lease
        now_served = await wait_until_async(lambda: _if_renewed(served_addresses(), "10.1.2.9"), 10,
                                            what="the new address in the served certificate")
        assert "10.1.2.3" not in now_served
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        server.close()
        await server.wait_closed()


async def _if_renewed(served: Any, address: str) -> set[str] | None:
    addresses = await served
    return addresses if address in addresses else None


# -- behind a reverse proxy ----------------------------------------------------------------------------


async def _login_attempts(tmp_path: Path, trusted: str) -> tuple[list[int], int]:
    """Six wrong passwords forwarded for 10.0.0.1, then the right one forwarded for 10.0.0.2."""
    (tmp_path / "library").mkdir(parents=True, exist_ok=True)
    config = make_config(tmp_path / "library", tmp_path / "data", **settings(server__trusted_proxies=trusted))
    async with api(config) as (app, client):
        await add_user(app, "admin", "admin")
        wrong = []
        for _ in range(6):
            r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "nope nope nope"},
                                  headers={"X-Forwarded-For": "10.0.0.1"})
            wrong.append(r.status)
        r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "correct horse battery"},
                              headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.2"})
        tokens = (await r.json()) if r.status == 200 else None
        if tokens is not None:  # HTTPS is off here (the test settings): the status says so
            status = await (await client.get("/api/v1/status", headers=auth(tokens))).json()
            assert status["https"] == {"enabled": False}
        page = await client.get("/", headers={"X-Forwarded-Proto": "https"})
        csp = page.headers["Content-Security-Policy"]
        return wrong + [r.status], csp.count("https://")


async def test_forwarded_headers_count_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    # from the proxy on 127.0.0.1: each forwarded client has its own login backoff, and the page
    # was asked for over HTTPS (its policy names the thumbnail port with https://)
    statuses, https_sources = await _login_attempts(tmp_path / "trusted", "127.0.0.1, 10.0.0.2/32")
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert statuses[6] == 200, "the other client (right-most untrusted hop) must not share the backoff"
    assert https_sources == 2  # img-src and connect-src
    # nobody trusted: the headers are ignored, so it is all one client (the backoff holds for both)
    statuses, https_sources = await _login_attempts(tmp_path / "untrusted", "")
    assert statuses[5] == 429 and statuses[6] == 429
    assert https_sources == 0


def test_a_bad_trusted_proxies_value_stops_start_up(tmp_path: Path) -> None:
    run = shoebox("serve", "--library", str(tmp_path), "--data", str(tmp_path / "data"), "--server-trusted-proxies",
                  "10.0.0.1, proxy.lan", check=False, timeout=60)
    assert run.returncode == 2 and "server.trusted_proxies" in run.stderr and "proxy.lan" in run.stderr


# -- a real `shoebox serve` ----------------------------------------------------------------------------


class HttpsDaemon(Daemon):
    """`shoebox serve` with HTTPS on (the default for users; the other tests turn it off). Its
    readiness is checked on the plain-HTTP port, whose /api/v1/health answers without TLS."""

    def __init__(self, library: Path, data: Path, *extra: str) -> None:
        self.http_port = free_port()
        super().__init__(library, data, "--server-https", "true", "--server-http-port", str(self.http_port), *extra)
        self.https_base = f"https://127.0.0.1:{self.port}"
        self.base = f"http://127.0.0.1:{self.http_port}"


def get(port: int, path: str, *, context: ssl.SSLContext | None = None, host: str = "127.0.0.1",
        method: str = "GET", headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection(host, port, timeout=10, context=context)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.slow
def test_https_with_the_generated_ca_verified_by_python_and_curl(tmp_path: Path) -> None:
    library, data = tmp_path / "library", tmp_path / "data"
    library.mkdir()
    create_admin(library, data)
    with HttpsDaemon(library, data) as d:
        ca = data / "tls" / "ca.crt"
        trust = client_context(ca)
        for name in ("localhost", "127.0.0.1"):
            status, _, body = get(d.port, "/api/v1/health", context=trust, host=name)
            assert status == 200 and b'"ok"' in body, name
        # the thumbnail port speaks HTTPS with the same certificate (a bad size: its JSON 400)
        status, _, body = get(d.thumbs_port, "/api/v1/t/nothing/huge", context=trust, host="localhost")
        assert status == 400 and b"unknown size" in body
        # a client that does not trust the CA is refused, and so is plain HTTP on the HTTPS port
        with pytest.raises(ssl.SSLCertVerificationError):
            get(d.port, "/api/v1/health", context=ssl.create_default_context(), host="localhost")
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            get(d.port, "/api/v1/health")
        # TLS 1.2 only with forward-secret AEAD ciphers: a client offering only CBC ones is refused
        tls12 = client_context(ca)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        assert get(d.port, "/api/v1/health", context=tls12, host="localhost")[0] == 200
        cbc = client_context(ca)
        cbc.maximum_version = ssl.TLSVersion.TLSv1_2
        cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
        with pytest.raises(ssl.SSLError):
            get(d.port, "/api/v1/health", context=cbc, host="localhost")

        curl = subprocess.run(["curl", "-sS", "--fail", "--cacert", str(ca), f"https://localhost:{d.port}/api/v1/health"],
                              capture_output=True, text=True, timeout=30)
        assert curl.returncode == 0 and '"status": "ok"' in curl.stdout, curl.stderr
        curl = subprocess.run(["curl", "-sS", "--cacert", str(ca), "-o", "/dev/null", "-w", "%{http_code}",
                               f"https://127.0.0.1:{d.port}/api/v1/health"], capture_output=True, text=True, timeout=30)
        assert curl.returncode == 0 and curl.stdout == "200", curl.stderr
        curl = subprocess.run(["curl", "-sS", f"https://localhost:{d.port}/api/v1/health"],
                              capture_output=True, text=True, timeout=30)
        assert curl.returncode == 60, "curl without the CA must refuse the certificate"

        # the plain-HTTP port: health and the CA answer, everything else goes to HTTPS (308)
        status, _, body = get(d.http_port, "/api/v1/health")
        assert status == 200 and b'"ok"' in body
        status, headers, body = get(d.http_port, "/ca.crt")
        assert status == 200 and headers["content-type"] == "application/x-x509-ca-cert"
        assert body == ca.read_bytes() and b"PRIVATE" not in body
        for method, path in (("GET", "/"), ("GET", "/albums/x?sort=date&q=a%20b"), ("POST", "/api/v1/auth/login"),
                             ("GET", "/api/v1/photos")):
            status, headers, _ = get(d.http_port, path, method=method)
            assert status == 308, (method, path)
            assert headers["location"] == f"https://127.0.0.1:{d.port}{path}"
        status, headers, _ = get(d.http_port, "/", headers={"Host": f"localhost:{d.http_port}"})
        assert status == 308 and headers["location"] == f"https://localhost:{d.port}/"
        status, _, _ = get(d.http_port, "/", headers={"Host": "attacker.example"})
        assert status == 421  # never a redirect to a name that is not ours
        with socket.create_connection(("127.0.0.1", d.http_port), timeout=10) as raw:  # HTTP/1.0, no Host
            raw.sendall(b"GET /albums HTTP/1.0\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head and (chunk := raw.recv(4096)):
                head += chunk
        assert head.startswith(b"HTTP/1.0 308") or head.startswith(b"HTTP/1.1 308"), head[:200]
        assert f"Location: https://127.0.0.1:{d.port}/albums".encode() in head, head
        # the same CA over HTTPS (the web app's install guide links it)
        status, headers, body = get(d.port, "/ca.crt", context=trust, host="localhost")
        assert status == 200 and body == ca.read_bytes()

        # the keys: 0600, and no URL serves them
        assert stat.S_IMODE((data / "tls").stat().st_mode) == 0o700
        for key in ("ca.key", "server.key"):
            assert stat.S_IMODE((data / "tls" / key).stat().st_mode) == 0o600
        for path in ("/ca.key", "/server.key", "/tls/ca.key", "/data/tls/server.key", "/ca.crt/../ca.key",
                     "/%2e%2e/tls/ca.key", "/api/v1/../../tls/ca.key"):
            status, _, body = get(d.port, path, context=trust, host="localhost")
            assert status in (400, 404) and b"PRIVATE KEY" not in body, path
            status, headers, _ = get(d.http_port, path)
            assert status in (308, 400, 404) and "PRIVATE KEY" not in str(headers), path
        assert "tls: made a local certificate authority" in d.stderr()

        # /api/v1/status says so, with the fingerprint a user compares before trusting the CA
        status, _, body = get(d.port, "/api/v1/auth/login", context=trust, host="localhost", method="POST",
                              headers={"Content-Type": "application/json"},
                              body=json.dumps({"username": "admin", "password": PASSWORD}).encode())
        assert status == 200, body
        token = json.loads(body)["access_token"]
        status, _, body = get(d.port, "/api/v1/status", context=trust, host="localhost",
                              headers={"Authorization": f"Bearer {token}"})
        https = json.loads(body)["https"]
        ca_cert = load(ca)
        assert https["enabled"] is True and https["certificate"] == "local"
        assert https["ca_fingerprint_sha256"] == ":".join(f"{b:02X}" for b in ca_cert.fingerprint(hashes.SHA256()))
        assert https["ca_fingerprint_sha256"] in d.stderr()  # the same as in the log
        assert dt.datetime.fromisoformat(https["not_after"]) == load(data / "tls" / "server.crt").not_valid_after_utc


def make_user_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A user's own CA and a certificate from it for localhost (as `mkcert` or a home CA makes)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "My home CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "photos.home")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "home-ca.crt", folder / "photos.crt", folder / "photos.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths


@pytest.mark.slow
def test_a_user_certificate_replaces_the_generated_one(tmp_path: Path) -> None:
    library, data = tmp_path / "library", tmp_path / "data"
    library.mkdir()
    home_ca, cert, key = make_user_ca(tmp_path / "mine")
    with HttpsDaemon(library, data, "--server-tls-cert", str(cert), "--server-tls-key", str(key)) as d:
        status, _, body = get(d.port, "/api/v1/health", context=client_context(home_ca), host="localhost")
        assert status == 200 and b'"ok"' in body
        status, _, _ = get(d.thumbs_port, "/api/v1/t/nothing/huge", context=client_context(home_ca), host="127.0.0.1")
        assert status == 400
        status, _, body = get(d.http_port, "/ca.crt")
        assert status == 404 and b"no_local_ca" in body  # no local CA to hand out
        assert not (data / "tls").exists()  # and none was made
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE")  # read, never rewritten


@pytest.mark.slow
@pytest.mark.parametrize("case", ["cert_only", "wrong_key", "missing"])
def test_a_user_certificate_that_cannot_work_stops_start_up_with_the_reason(tmp_path: Path, case: str) -> None:
    _, cert, key = make_user_ca(tmp_path / "mine")
    other = ec.generate_private_key(ec.SECP256R1())
    wrong = tmp_path / "other.key"
    wrong.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    args = {"cert_only": ["--server-tls-cert", str(cert)],
            "wrong_key": ["--server-tls-cert", str(cert), "--server-tls-key", str(wrong)],
            "missing": ["--server-tls-cert", str(tmp_path / "nope.crt"), "--server-tls-key", str(key)]}[case]
    run = shoebox("serve", "--library", str(tmp_path), "--data", str(tmp_path / "data"), "--server-port",
                  str(free_port()), *args, check=False, timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    expected = {"cert_only": "go together", "wrong_key": "matching", "missing": "nope.crt"}[case]
    assert "configuration error" in run.stderr and expected in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr


@pytest.mark.slow
async def test_zeroconf_announces_the_https_port(tmp_path: Path) -> None:
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    from tests.waiting import wait_until_async

    library, data = tmp_path / "library", tmp_path / "data"
    library.mkdir()
    types = ["_https._tcp.local.", "_http._tcp.local.", "_shoebox._tcp.local."]
    found: list[tuple[str, str]] = []

    def changed(zeroconf, service_type, name, state_change):  # type: ignore[no-untyped-def]
        if state_change is ServiceStateChange.Added:
            found.append((service_type, name))

    with HttpsDaemon(library, data, "--zeroconf-enabled", "true", "--zeroconf-interfaces", "127.0.0.1",
                     "--zeroconf-name", "Shoebox tls") as d:
        zc = AsyncZeroconf(interfaces=["127.0.0.1"])
        browser = AsyncServiceBrowser(zc.zeroconf, types, handlers=[changed])
        try:
            await wait_until_async(lambda: len(found) >= 2, 30, what="both services announced")
            assert sorted(t for t, _ in found) == ["_https._tcp.local.", "_shoebox._tcp.local."], found
            for service_type, name in found:
                info = AsyncServiceInfo(service_type, name)
                assert await info.async_request(zc.zeroconf, 3000), name
                txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
                assert info.port == d.port and txt["scheme"] == "https" and txt["thumbs"] == str(d.thumbs_port)
        finally:
            await browser.async_cancel()
            await zc.async_close()
        # what it points at answers HTTPS with the local CA
        trust = client_context(data / "tls" / "ca.crt")
        status, _, _ = await asyncio.to_thread(get, d.port, "/api/v1/health", context=trust, host="localhost")
        assert status == 200
        await wait_until_async(lambda: d.stderr().count("zeroconf: announced") >= 2, 20, what="registration done")
