"""HTTPS on the LAN: a local certificate authority, the server certificate it signs, and the
TLS context the web server and the thumbnail server speak.

Why: browsers allow a service worker (the web app offline, installed on a phone's home screen)
only in a secure context, and a password typed over plain HTTP on a home Wi-Fi is readable by
anyone on it. No public CA signs a name like `shoebox.local` or 192.168.1.20, so on its first
start the daemon makes its own CA ("Shoebox local CA <hostname>", ten years), which the user
installs once on each device (README: HTTPS on your network; `/ca.crt` downloads it), and signs
with it a short-lived server certificate for `<hostname>.local`, the host name, `localhost` and
the machine's current addresses. The server certificate is renewed, with a new key, well before
it expires and whenever the names or addresses change (a new DHCP lease): checked at start and
every CHECK_INTERVAL seconds while serving, and the running TLS context is reloaded in place, so
new connections get the new certificate without a restart.

Keys are EC P-256 (fast to make on a Pi, accepted by every current browser and phone), written
0600 into `<data>/tls/` (0700) from their first byte, and never served. A user's own certificate
and key (`[server] tls_cert`, `tls_key`) replace the generated server certificate; they are read,
never rewritten.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import ifaddr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daemon.config import ConfigError
from daemon.system.durable import fsync_dir
from daemon.system.permissions import PRIVATE_FILE, private_dir, tighten_existing

log = logging.getLogger(__name__)

CA_DAYS = 3650  # the CA is installed by hand on every device: it must outlive the hardware
SERVER_DAYS = 397  # what browsers accept for a server certificate at most (398), minus a margin
RENEW_BEFORE = dt.timedelta(days=30)
CHECK_INTERVAL = 60.0  # seconds between two looks at the addresses and the expiry while serving
BACKDATE = dt.timedelta(hours=1)  # a phone whose clock is a little behind still accepts it


class TlsError(ConfigError):
    """The TLS settings cannot work (a user certificate that cannot be read or does not match its
    key); the message says which file and why."""


@dataclass(frozen=True)
class Identity:
    """What the server certificate must name: DNS names and IP addresses (sorted, no duplicates)."""

    names: tuple[str, ...]
    addresses: tuple[str, ...]

    @classmethod
    def of(cls, names: Iterable[str], addresses: Iterable[str]) -> "Identity":
        return cls(tuple(sorted({n.lower().rstrip(".") for n in names if n})),
                   tuple(sorted({str(ipaddress.ip_address(a)) for a in addresses})))


def host_label(hostname: str) -> str:
    """The first label of the host name: what `<label>.local` is built from (as zeroconf does)."""
    return hostname.lower().rstrip(".").split(".")[0] or "shoebox"


def current_addresses() -> list[str]:
    """Loopback and every interface address a client can type: no link-local (an fe80:: address
    needs a zone that no URL carries) and no multicast."""
    found = {"127.0.0.1", "::1"}
    for adapter in ifaddr.get_adapters():
        for entry in adapter.ips:
            raw = entry.ip[0] if isinstance(entry.ip, tuple) else entry.ip
            try:
                ip = ipaddress.ip_address(str(raw).split("%", 1)[0])
            except ValueError:
                continue
            if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
                continue
            found.add(str(ip))
    return sorted(found)


def local_identity(hostname: str | None = None, addresses: Iterable[str] | None = None,
                   extra: Iterable[str] = ()) -> Identity:
    """`<label>.local`, the host name, its first label and `localhost`, and the addresses; plus
    `extra` names or addresses (`server.hostnames`: a name in the house's DNS, say)."""
    host = (hostname or socket.gethostname()).lower().rstrip(".")
    label = host_label(host)
    names = [f"{label}.local", host, label, "localhost"]
    ips = list(current_addresses() if addresses is None else addresses)
    for item in extra:
        item = item.strip().strip("[]")
        if not item or "*" in item:
            continue
        try:
            ips.append(str(ipaddress.ip_address(item)))
        except ValueError:
            names.append(item)
    return Identity.of(names, ips)


def identity_of(cert: x509.Certificate) -> Identity:
    """What a certificate names (its subject alternative names)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return Identity((), ())
    return Identity.of(san.get_values_for_type(x509.DNSName),
                       (str(a) for a in san.get_values_for_type(x509.IPAddress)))


def renewal_reason(cert: x509.Certificate | None, ca: x509.Certificate, wanted: Identity,
                   now: dt.datetime | None = None) -> str | None:
    """Why the server certificate must be made again, or None while it is good. Pure: the
    caller reads the files and the addresses (so a test can give any address set)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if cert is None:
        return "there is no server certificate yet"
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature (not a ValueError), or another key type
        return "the server certificate was not signed by the current local CA"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"the server certificate expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    have = identity_of(cert)
    if have != wanted:
        added = sorted(set(wanted.names + wanted.addresses) - set(have.names + have.addresses))
        gone = sorted(set(have.names + have.addresses) - set(wanted.names + wanted.addresses))
        return ("the names or addresses changed (" + ", ".join([f"+{a}" for a in added] + [f"-{g}" for g in gone])
                + ")")
    return None


# -- files ---------------------------------------------------------------------------------------


def write_private(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Write `path` whole or not at all (temporary file, fsync, rename), with `mode` from its
    creation: a key is never readable by others, not even for a moment."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(hostname: str, now: dt.datetime | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Shoebox local CA {hostname}"[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shoebox")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_server_cert(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, identity: Identity,
                     now: dt.datetime | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    first = identity.names[0] if identity.names else "localhost"
    local = next((n for n in identity.names if n.endswith(".local")), first)
    san = [x509.DNSName(n) for n in identity.names] + [x509.IPAddress(ipaddress.ip_address(a))
                                                        for a in identity.addresses]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, local[:64])]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as `openssl x509 -noout -fingerprint -sha256` prints it: what a user
    compares on a device before trusting a CA downloaded over plain HTTP."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _read_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("%s is not a PEM certificate; making a new one", path)
        return None


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context with modern TLS only: TLS 1.2 with forward-secret AEAD ciphers, or 1.3."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(cert, key)
    return ctx


class LocalCertificates:
    """The generated CA and server certificate in one folder (`<data>/tls`)."""

    def __init__(self, folder: Path, hostname: str | None = None,
                 addresses: Callable[[], Iterable[str]] | None = None, extra_names: Iterable[str] = ()) -> None:
        self.folder = Path(folder)
        self.extra_names = tuple(extra_names)
        self.hostname = (hostname or socket.gethostname()).lower().rstrip(".")
        self._addresses = addresses or current_addresses
        self.ca_key = self.folder / "ca.key"
        self.ca_cert = self.folder / "ca.crt"
        self.key = self.folder / "server.key"
        self.cert = self.folder / "server.crt"

    def wanted(self) -> Identity:
        return local_identity(self.hostname, self._addresses(), self.extra_names)

    def ensure(self, now: dt.datetime | None = None) -> str | None:
        """Make the CA if there is none and the server certificate if it must be (re)made.
        Returns why it was made (for the log and the caller's reload), or None. Blocking: run it
        in a thread while serving."""
        private_dir(self.folder)
        tighten_existing(self.ca_key, self.key)
        ca = _read_cert(self.ca_cert)
        ca_key = self._read_key(self.ca_key) if ca is not None else None
        if ca is None or ca_key is None or ca_key.public_key() != ca.public_key():
            ca_key, ca = make_ca(self.hostname, now)
            write_private(self.ca_key, _key_pem(ca_key))
            write_private(self.ca_cert, _cert_pem(ca), 0o644)
            log.info("tls: made a local certificate authority %r in %s (install %s on your devices: "
                     "README, HTTPS on your network; SHA-256 fingerprint %s)", ca.subject.rfc4514_string(),
                     self.folder, self.ca_cert, fingerprint(ca))
        wanted = self.wanted()
        reason = renewal_reason(_read_cert(self.cert), ca, wanted, now)
        if reason is None and self._read_key(self.key) is None:
            reason = "the server key is missing"
        if reason is None:
            return None
        key, cert = make_server_cert(ca_key, ca, wanted, now)
        write_private(self.key, _key_pem(key))
        write_private(self.cert, _cert_pem(cert), 0o644)
        log.info("tls: made a server certificate for %s, valid until %s (%s)",
                 ", ".join(wanted.names + wanted.addresses), f"{cert.not_valid_after_utc:%Y-%m-%d}", reason)
        return reason

    @staticmethod
    def _read_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            log.warning("%s is not an unencrypted PEM private key; making a new one", path)
            return None
        return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


class ServerTls:
    """What the servers need: the TLS context, kept current; the CA certificate to hand out.

    Either generated (LocalCertificates, renewed while serving) or the user's own certificate
    and key, which are only read."""

    def __init__(self, local: LocalCertificates | None, cert: Path, key: Path) -> None:
        self.local = local
        self.cert_path, self.key_path = cert, key
        self.context: ssl.SSLContext | None = None
        self.summary: dict[str, object] = {"enabled": True}  # for /api/v1/status; made off the loop

    @classmethod
    def from_config(cls, data: Path, tls_cert: str, tls_key: str, hostnames: str = "") -> "ServerTls":
        cert, key = tls_cert.strip(), tls_key.strip()
        if bool(cert) != bool(key):
            raise TlsError("server.tls_cert and server.tls_key go together: give both files (a certificate "
                           "and its private key) or neither (then Shoebox makes its own)")
        if cert:
            return cls(None, Path(cert).expanduser(), Path(key).expanduser())
        local = LocalCertificates(Path(data) / "tls", extra_names=[n for n in hostnames.split(",") if n.strip()])
        return cls(local, local.cert, local.key)

    @property
    def ca_certificate(self) -> Path | None:
        """The local CA's certificate (what /ca.crt serves), None with a user certificate."""
        return self.local.ca_cert if self.local is not None else None

    def prepare(self) -> ssl.SSLContext:
        """Make what is missing and build the context. Blocking (key generation): in a thread."""
        if self.local is not None:
            self.local.ensure()
        for path in (self.cert_path, self.key_path):  # ssl's own errors do not name the file
            try:
                with open(path, "rb"):
                    pass
            except FileNotFoundError:
                raise TlsError(f"cannot read {path}: it does not exist") from None
            except PermissionError:
                raise TlsError(f"cannot read {path}: permission denied (the service user must be able to read it)") from None
            except IsADirectoryError:
                raise TlsError(f"cannot read {path}: it is a folder, not a file") from None
        try:
            self.context = server_context(self.cert_path, self.key_path)
        except ssl.SSLError as exc:
            raise TlsError(f"{self.cert_path} and {self.key_path} are not a PEM certificate and its matching "
                           f"unencrypted private key ({exc.reason or exc})") from None
        self.summary = self.summarize()
        return self.context

    def summarize(self) -> dict[str, object]:
        """What /api/v1/status says about HTTPS (blocking: reads the files): whose certificate,
        until when, and the local CA's fingerprint to compare on a device before trusting it."""
        out: dict[str, object] = {"enabled": True, "certificate": "local" if self.local is not None else "own"}
        try:
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            out["not_after"] = cert.not_valid_after_utc.isoformat()
        except (OSError, ValueError):
            pass
        if self.local is not None:
            try:
                out["ca_fingerprint_sha256"] = fingerprint(x509.load_pem_x509_certificate(self.local.ca_cert.read_bytes()))
            except (OSError, ValueError):
                pass
        return out

    def check(self, now: dt.datetime | None = None) -> str | None:
        """Renew the generated certificate if it must be, and reload the running context in place
        (connections made from then on get the new certificate). Blocking."""
        if self.local is None or self.context is None:
            return None
        reason = self.local.ensure(now)
        if reason is not None:
            self.summary = self.summarize()
            self.reload()
        return reason

    def reload(self) -> None:
        """Load the current files into the running context. On the event loop's thread: the
        context is in use there (handshakes), and loading two small PEM files takes a millisecond."""
        assert self.context is not None
        self.context.load_cert_chain(self.cert_path, self.key_path)

    async def watch(self, interval: float = CHECK_INTERVAL) -> None:
        """While serving: the address set (a new DHCP lease) and the expiry, every `interval`.
        The new key is made in a thread; the context is reloaded on the loop."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.local is not None and await asyncio.to_thread(self.local.ensure) is not None:
                    self.summary = await asyncio.to_thread(self.summarize)
                    self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tls: could not renew the server certificate")


def check_user_certificate(tls_cert: str, tls_key: str) -> None:
    """A configured certificate and key must load together (at start, before anything else runs:
    a typo in a path is a configuration error, exit 2). Nothing configured: nothing to check."""
    tls = ServerTls.from_config(Path("."), tls_cert, tls_key)
    if tls.local is None:
        tls.prepare()
