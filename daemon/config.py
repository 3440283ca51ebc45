"""Settings: one declared schema, read from config/shoebox.toml, SHOEBOX_* variables and flags.

Why one schema: the same list of settings drives the TOML reader, the environment variables
(`[mqtt] host` → `SHOEBOX_MQTT_HOST`, top-level `library` → `SHOEBOX_LIBRARY`), the command-line
flags (`--mqtt-host`) and the check that config/shoebox.toml documents every one of them, so a
setting can never exist in one place and be missing in another. A bad value stops start-up with a
message naming the key, the value given and what is allowed.

Precedence, lowest first: built-in default < config file < environment < flag.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

ENV_PREFIX = "SHOEBOX_"


class ConfigError(Exception):
    """A setting has a value that is not allowed; the message says which, what and why."""


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Setting:
    """One setting: where it lives, its type and what values it allows."""

    section: str  # "" for top-level keys
    key: str
    type: str  # bool | int | float | str | path | paths | choice
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def env(self) -> str:
        parts = [self.section, self.key] if self.section else [self.key]
        return ENV_PREFIX + "_".join(parts).upper()

    @property
    def flag(self) -> str:
        parts = [self.section, self.key] if self.section else [self.key]
        return "--" + "-".join(parts).replace("_", "-")

    def allowed(self) -> str:
        if self.type == "bool":
            return "true or false"
        if self.type == "choice":
            return "one of " + ", ".join(self.choices)
        if self.type in ("int", "float"):
            kind = "a whole number" if self.type == "int" else "a number"
            lo = "" if self.minimum is None else f" >= {self.minimum:g}"
            hi = "" if self.maximum is None else f" <= {self.maximum:g}"
            return kind + (lo + ("," if lo and hi else "") + hi)
        if self.type == "path":
            return "a file system path"
        if self.type == "paths":
            return f"a list of file system paths (a TOML array; separated by {os.pathsep!r} in a variable or flag)"
        return "text"

    def coerce(self, raw: Any, origin: str) -> Any:
        """Turn a raw value (TOML value or string from env/flag) into the setting's type."""

        def bad(why: str = "") -> ConfigError:
            extra = f" ({why})" if why else ""
            return ConfigError(
                f"invalid value for {self.name} from {origin}: {raw!r}; allowed: {self.allowed()}{extra}"
            )

        t = self.type
        if t == "bool":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
                return raw.strip().lower() in _TRUE
            raise bad()
        if t in ("int", "float"):
            if isinstance(raw, bool):
                raise bad()
            try:
                value: float | int = int(raw) if t == "int" else float(raw)
                if t == "int" and isinstance(raw, float) and raw != int(raw):
                    raise ValueError
            except (TypeError, ValueError):
                raise bad() from None
            if self.minimum is not None and value < self.minimum:
                raise bad("too small")
            if self.maximum is not None and value > self.maximum:
                raise bad("too large")
            return value
        if t == "choice":
            value = str(raw).strip().lower()
            if value not in self.choices:
                raise bad()
            return value
        if t == "paths":
            items = raw.split(os.pathsep) if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, (str, Path)) for i in items):
                raise bad()
            return tuple(Path(os.path.expandvars(str(i).strip())).expanduser() for i in items if str(i).strip())
        if t == "path":
            if not isinstance(raw, (str, Path)) or not str(raw).strip():
                raise bad()
            return Path(os.path.expandvars(str(raw))).expanduser()
        if not isinstance(raw, (str, int, float)):
            raise bad()
        return str(raw)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _default_workers() -> int:
    return _cpu_count()


SCHEMA: tuple[Setting, ...] = (
    Setting("", "library", "path", Path("~/Pictures").expanduser(),
            "The folder of photos and videos to index. Shoebox only reads it (uploads and imports go to its `upload_folder`)."),
    Setting("", "data", "path", Path("~/.local/share/shoebox").expanduser(),
            "Where Shoebox keeps its database, thumbnails and caches."),
    Setting("server", "host", "str", "0.0.0.0", "Address the web server listens on (0.0.0.0: every interface)."),
    Setting("server", "port", "int", 8420, "TCP port of the web server and API.", 1, 65535),
    Setting("server", "thumbnail_port", "int", 8421,
            "TCP port of the thumbnail server (a lean HTTP/1.1 server for /api/v1/t/...; 0: off, thumbnails then only on server.port).", 0, 65535),
    Setting("server", "thumbnail_cache_mib", "int", 32,
            "Memory for the most recently sent thumbnails (0: read every thumbnail from disk).", 0, 4096),
    Setting("server", "web_root", "path", Path(__file__).resolve().parent.parent / "web" / "dist",
            "The built web app that is served at / (`make web` builds web/dist; without it the API still works)."),
    Setting("server", "max_body_kib", "int", 1024,
            "Largest JSON request body in KiB; a bigger one is refused with 413 (uploads have their own limit).", 16, 65536),
    Setting("server", "hostnames", "str", "",
            "Host names besides the machine's own (comma-separated, e.g. a reverse proxy's name) that the daemon answers for; \"*\": any (no DNS-rebinding check)."),
    Setting("server", "https", "bool", True,
            "Serve the app, the API and the thumbnail port over HTTPS (a certificate from Shoebox's own local CA, or tls_cert); false: plain HTTP, e.g. behind a reverse proxy."),
    Setting("server", "http_port", "int", 8419,
            "With HTTPS: the plain-HTTP port that answers /api/v1/health and /ca.crt and redirects everything else to HTTPS (0: off).", 0, 65535),
    Setting("server", "tls_cert", "str", "",
            "Your own certificate (PEM, with its chain) instead of the generated one; needs tls_key (empty: Shoebox makes one)."),
    Setting("server", "tls_key", "str", "", "The private key (PEM, unencrypted) of tls_cert."),
    Setting("server", "trusted_proxies", "str", "",
            "Reverse proxies (addresses or CIDR networks, separated by commas) whose X-Forwarded-For and X-Forwarded-Proto are believed (empty: nobody's)."),
    Setting("server", "max_connections", "int", 512, "Open connections each port accepts in total.", 1, 65536),
    Setting("server", "max_connections_per_address", "int", 64,
            "Open connections each port accepts from one client address (IPv6: one /64 network).", 1, 65536),
    Setting("server", "header_timeout", "float", 10.0,
            "Seconds a request's headers may take to arrive, from their first byte (slow-loris); then 408 and closed.", 1, 600),
    Setting("server", "body_timeout", "float", 30.0,
            "Longest pause, in seconds, while a request body is arriving; then the connection is closed.", 1, 3600),
    Setting("server", "idle_timeout", "float", 60.0, "Seconds an idle keep-alive connection stays open.", 1, 3600),
    Setting("index", "workers", "int", 0,
            "Worker threads for decoding, thumbnails and tagging; 0 means one per CPU core.", 0, 64),
    Setting("index", "nice", "int", 10,
            "How much worker threads lower their own priority (Linux nice, per thread) so the web server answers first.", 0, 19),
    Setting("index", "watch", "bool", True, "Pick up new and changed files within seconds (inotify) while serving."),
    Setting("index", "rescan_interval", "int", 3600,
            "Seconds between full rescans while serving (catches what the watcher missed); 0 turns them off.", 0, 604800),
    Setting("index", "scan_on_start", "bool", True, "Scan the library when `shoebox serve` starts."),
    Setting("index", "follow_symlinks", "bool", True, "Follow symbolic links inside the library (loops are detected)."),
    Setting("index", "allowed_link_targets", "paths", (),
            "Folders outside the library that links inside it may lead to (e.g. another drive); links to anywhere else are skipped."),
    Setting("index", "max_pixels", "int", 200_000_000,
            "Largest image (in pixels) that is decoded; bigger files are recorded as errors (decompression bombs).",
            1_000_000, 2_000_000_000),
    Setting("index", "max_decode_mib", "int", 768,
            "Most memory one image decode may take (MiB), priced from the file's headers before any pixel is decoded; bigger decodes are recorded as errors.",
            64, 65536),
    Setting("index", "exiftool", "str", "exiftool", "The exiftool program (Debian: libimage-exiftool-perl)."),
    Setting("index", "exiftool_timeout", "float", 20.0, "Seconds exiftool may take for one file before it is restarted.", 1, 600),
    Setting("index", "ffmpeg", "str", "ffmpeg", "The ffmpeg program, for video poster frames."),
    Setting("index", "ffprobe", "str", "ffprobe", "The ffprobe program, for video metadata."),
    Setting("index", "job_retries", "int", 2, "How often a failed index job is retried before the file is recorded as an error.", 0, 10),
    Setting("index", "min_free_mib", "int", 100,
            "Free space (MiB) to keep on the data disk: below it indexing pauses, and resumes by itself once space is freed.",
            0, 1_048_576),
    Setting("tagging", "enabled", "bool", True, "Tag photos on this device: labels, faces and people (and NSFW when on)."),
    Setting("tagging", "labels", "bool", True, "Label photos with the image classifier (EfficientNet-Lite0, int8)."),
    Setting("tagging", "faces", "bool", True, "Find faces (BlazeFace) and group them into people (MobileFaceNet)."),
    Setting("tagging", "nsfw", "bool", False, "Score photos for nudity and mark those above nsfw_threshold private."),
    Setting("tagging", "nsfw_threshold", "float", 0.8, "NSFW score (0-1) from which a photo is marked private.", 0, 1),
    Setting("tagging", "models_dir", "path", Path(__file__).resolve().parent.parent / "models",
            "Folder with the TFLite models and labels.yml (the repository's models/ folder by default)."),
    Setting("tagging", "idle_unload", "int", 0,
            "Seconds after which unused models are unloaded to free memory (0: keep them loaded).", 0, 86400),
    Setting("tagging", "threads", "int", 1, "Interpreter threads per worker (each worker runs its own interpreter).", 1, 8),
    Setting("tagging", "face_min_size", "int", 30, "Smallest face, in pixels on the 720 px image, that is kept.", 8, 720),
    Setting("tagging", "match_threshold", "float", 0.55,
            "Cosine similarity from which a face is the same person (calibrated on the sample faces: see README).", 0, 1),
    Setting("thumbnails", "format", "choice", "jpeg",
            "Thumbnail format. WebP is smaller but costs about 30x more CPU to encode on these machines.",
            choices=("jpeg", "webp")),
    Setting("thumbnails", "quality", "int", 82, "Thumbnail encoder quality.", 30, 100),
    Setting("import", "upload_folder", "str", "Uploads",
            "Folder inside the library that uploads are stored in (the only place besides imports that Shoebox writes to)."),
    Setting("import", "max_upload_mib", "int", 4096, "Largest file an upload may send, in MiB; a bigger one is refused with 413.",
            1, 1_048_576),
    Setting("import", "max_request_mib", "int", 8192, "Largest upload request (all its files together), in MiB.", 1, 4_194_304),
    Setting("import", "upload_wait", "float", 30.0,
            "Seconds an upload waits for its files to be indexed before answering 202 (still queued).", 0, 600),
    Setting("import", "import_folder", "str", "",
            "Folder imported by the MQTT command `import` when it names none (empty: the command must name one)."),
    Setting("import", "layout", "str", "{year}/{month}",
            "Dated folders that imports (below the library) and uploads (below upload_folder) go into: {year}, {month}, {day}."),
    Setting("events", "outbox_max", "int", 10_000,
            "Events kept for MQTT and webhooks while they are unreachable; beyond this the oldest are dropped and counted.",
            100, 10_000_000),
    Setting("mqtt", "enabled", "bool", False, "Publish events and state to an MQTT broker (Home Assistant)."),
    Setting("mqtt", "host", "str", "localhost", "The MQTT broker's host name or address."),
    Setting("mqtt", "port", "int", 1883, "The MQTT broker's port (8883 is usual with TLS).", 1, 65535),
    Setting("mqtt", "tls", "bool", False, "Connect to the broker over TLS."),
    Setting("mqtt", "ca_file", "str", "", "CA certificate file for TLS (empty: the system's CAs)."),
    Setting("mqtt", "cert_file", "str", "", "Client certificate file for TLS client authentication (empty: none)."),
    Setting("mqtt", "key_file", "str", "", "Private key of the client certificate (empty: none)."),
    Setting("mqtt", "username", "str", "", "MQTT user name (empty: anonymous)."),
    Setting("mqtt", "password", "str", "", "MQTT password.", secret=True),
    Setting("mqtt", "client_id", "str", "", "MQTT client id (empty: shoebox-<instance id>)."),
    Setting("mqtt", "base_topic", "str", "shoebox", "First part of every Shoebox topic: <base_topic>/<instance id>/..."),
    Setting("mqtt", "discovery", "bool", True, "Publish Home Assistant MQTT discovery messages."),
    Setting("mqtt", "discovery_prefix", "str", "homeassistant", "Home Assistant's MQTT discovery prefix."),
    Setting("mqtt", "birth_topic", "str", "homeassistant/status",
            "Home Assistant's birth topic: `online` there re-sends discovery (its MQTT birth message setting)."),
    Setting("mqtt", "state_interval", "float", 5.0,
            "Seconds between two updates of the retained state topic (at most).", 1, 3600),
    Setting("webhooks", "timeout", "float", 10.0, "Seconds a webhook receiver has to answer a delivery.", 1, 120),
    Setting("webhooks", "max_failures", "int", 15,
            "Failed deliveries in a row after which a webhook subscription is disabled.", 1, 1000),
    Setting("webhooks", "retry_base", "float", 2.0,
            "Seconds before the first retry of a failed delivery; doubled each time, with jitter.", 0.1, 3600),
    Setting("webhooks", "retry_max", "float", 3600.0, "Longest wait between two retries, in seconds.", 1, 86400),
    Setting("webhooks", "concurrency", "int", 4, "Webhook requests in flight at once, over all subscriptions.", 1, 64),
    Setting("webhooks", "allow_private_targets", "str", "",
            "Loopback, link-local and other non-routable webhook targets allowed anyway: addresses, networks (CIDR) "
            "or address:port pairs separated by commas, or \"all\" (LAN ranges are always allowed)."),
    Setting("zeroconf", "enabled", "bool", True, "Announce Shoebox on the local network (mDNS/DNS-SD, _http._tcp and _shoebox._tcp)."),
    Setting("zeroconf", "name", "str", "Shoebox", "Service name shown to browsers and apps (a number is added if it is taken)."),
    Setting("zeroconf", "interfaces", "str", "all",
            "Where to announce: \"all\" interfaces, or IP addresses separated by commas."),
    Setting("auth", "access_ttl", "int", 900, "Seconds an access token is valid (clients refresh it).", 60, 86400),
    Setting("auth", "session_ttl", "int", 2592000,
            "Seconds a login lasts without being used; each refresh extends it.", 3600, 31536000),
    Setting("auth", "thumb_ttl", "int", 604800, "Seconds a thumbnail URL token is valid (plus up to a day).", 3600, 2592000),
    Setting("auth", "max_failures", "int", 5,
            "Failed logins for one account from one address before that address backs off (2 s, doubling up to"
            " `lockout`); never a lock on the account itself.", 1, 1000),
    Setting("auth", "address_failures", "int", 20,
            "Failed logins from one address within `lockout` seconds after which it must wait.", 1, 10000),
    Setting("auth", "account_failures", "int", 20,
            "Failed logins for one account (from any address) within `lockout` seconds after which its logins are"
            " slowed down: addresses that failed on it wait out their backoff, others get one check a second.", 1, 100000),
    Setting("auth", "lockout", "int", 900,
            "Seconds over which failed logins are counted, and the longest backoff (429 + Retry-After).", 1, 86400),
    Setting("auth", "app_token_days", "int", 365,
            "Days an app token is valid when its maker gives no expiry (0: until revoked).", 0, 3650),
    Setting("search", "max_seconds", "float", 3.0,
            "Seconds one search may run (the album list's counts together); longer: 400 \"query too expensive\".",
            0.05, 600),
    Setting("backup", "schedule", "choice", "off",
            "Back up while serving: hourly, daily or weekly (daily and weekly at `hour`); off: only `shoebox backup`.",
            choices=("off", "hourly", "daily", "weekly")),
    Setting("backup", "hour", "int", 3, "Local hour (0-23) at which daily and weekly backups run.", 0, 23),
    Setting("backup", "destination", "str", "",
            "Folder the scheduled backups (and `shoebox backup` without DEST) go to, e.g. a folder on a USB disk; it must exist."),
    Setting("backup", "keep", "int", 7, "Scheduled backups of this library kept in the destination; older ones are removed.", 1, 1000),
    Setting("backup", "thumbnails", "bool", False, "Put the thumbnails into scheduled backups too (they are remade when missing)."),
    Setting("backup", "originals", "bool", False, "Put a copy of every library file into scheduled backups too."),
    Setting("backup", "s3_endpoint", "str", "",
            "For an s3:// destination: the URL of an S3-compatible server (MinIO, Garage, a NAS); empty: Amazon S3."),
    Setting("backup", "s3_region", "str", "", "For an s3:// destination: the region (empty: boto3's default, or us-east-1 with s3_endpoint)."),
    Setting("backup", "s3_access_key", "str", "",
            "For an s3:// destination: the access key id (empty: AWS_ACCESS_KEY_ID or ~/.aws/credentials)."),
    Setting("backup", "s3_secret_key", "str", "", "The secret key of s3_access_key.", secret=True),
    Setting("metrics", "public", "bool", False, "Serve /metrics without credentials (for a Prometheus on a trusted network)."),
    Setting("log", "level", "choice", "info", "Log level.", choices=("debug", "info", "warning", "error")),
)

SCHEMA_BY_NAME: dict[str, Setting] = {s.name: s for s in SCHEMA}


@dataclass
class Config:
    """Validated settings. `values` maps `section.key` (or a top-level key) to a typed value;
    `origins` says where each value came from (default, the file's path, env:NAME, flag:--x)."""

    values: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)
    file: Path | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    # Shortcuts for the settings nearly everything uses.
    @property
    def library(self) -> Path:
        return Path(self.values["library"]).resolve()

    @property
    def data(self) -> Path:
        return Path(self.values["data"]).resolve()

    @property
    def workers(self) -> int:
        return self.values["index.workers"] or _default_workers()

    def section(self, name: str) -> dict[str, Any]:
        prefix = name + "."
        return {k[len(prefix):]: v for k, v in self.values.items() if k.startswith(prefix)}

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value, origin) for every setting, secrets masked: for `shoebox config`."""
        rows = []
        for s in SCHEMA:
            v = self.values[s.name]
            shown = os.pathsep.join(map(str, v)) if s.type == "paths" else str(v)
            rows.append((s.name, "***" if s.secret and v else shown, self.origins.get(s.name, "default")))
        return rows


def default_config_paths() -> list[Path]:
    """Where a config file is looked for when none is named: the repository's config/ folder (a
    development checkout), then /etc/shoebox (the Pi image and the systemd unit)."""
    here = Path(__file__).resolve().parent.parent / "config" / "shoebox.toml"
    return [here, Path("/etc/shoebox/shoebox.toml")]


def _flatten(doc: Mapping[str, Any], origin: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, dict):
                    raise ConfigError(f"{origin}: [{key}.{sub}] is not a known section")
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def load_config(
    *,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    search_default_files: bool = True,
) -> Config:
    """Build the validated Config. `flags` maps setting names to raw values (None = not given)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {s.name: s.default for s in SCHEMA}
    origins: dict[str, str] = {s.name: "default" for s in SCHEMA}

    path = file
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    if path is None and search_default_files:
        path = next((p for p in default_config_paths() if p.is_file()), None)
    if path is not None:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for name, raw in _flatten(doc, str(path)).items():
            setting = SCHEMA_BY_NAME.get(name)
            if setting is None:
                raise ConfigError(f"{path}: unknown setting {name!r}; known: {', '.join(sorted(SCHEMA_BY_NAME))}")
            value = setting.coerce(raw, str(path))
            if setting.type == "path" and not value.is_absolute():
                value = (path.parent / value).resolve()  # relative to the file, not to the caller's cwd
            if setting.type == "paths":
                value = tuple(v if v.is_absolute() else (path.parent / v).resolve() for v in value)
            values[name] = value
            origins[name] = str(path)

    for setting in SCHEMA:
        if setting.env in env and env[setting.env] != "":
            values[setting.name] = setting.coerce(env[setting.env], f"environment variable {setting.env}")
            origins[setting.name] = f"env:{setting.env}"

    for name, raw in (flags or {}).items():
        if raw is None:
            continue
        setting = SCHEMA_BY_NAME[name]
        values[name] = setting.coerce(raw, f"flag {setting.flag}")
        origins[name] = f"flag:{setting.flag}"

    return Config(values=values, origins=origins, file=path)


def add_setting_flags(parser: argparse.ArgumentParser, *, skip: Iterable[str] = ()) -> None:
    """Add a `--section-key` flag for every setting (values validated later by load_config)."""
    skipped = set(skip)
    group = parser.add_argument_group("settings (each also in config/shoebox.toml and as SHOEBOX_* variable)")
    for s in SCHEMA:
        if s.name in skipped:
            continue
        group.add_argument(s.flag, dest=_dest(s), default=None, metavar=s.type.upper(),
                           help=f"{s.help} [{s.env}]")


def _dest(s: Setting) -> str:
    return "setting__" + s.name.replace(".", "__")


def flags_from_args(args: argparse.Namespace, extra: Mapping[str, Callable[[argparse.Namespace], Any]] | None = None) -> dict[str, Any]:
    """Collect the setting flags from parsed arguments into {name: raw value}."""
    flags: dict[str, Any] = {}
    for s in SCHEMA:
        dest = _dest(s)
        if getattr(args, dest, None) is not None:
            flags[s.name] = getattr(args, dest)
    for name, getter in (extra or {}).items():
        value = getter(args)
        if value is not None:
            flags[name] = value
    return flags
