"""What must never be shown: credentials inside URLs, and tokens in log lines.

Two tools, one place, so the API, the command line and the log agree on what a secret looks like:

- `mask_url` keeps a URL recognisable (scheme, host, port, the shape of the path) but replaces
  user:password@, the values of query parameters named like credentials (token=, key=, secret=,
  sig=, ...) and long random-looking path segments (Home Assistant's /api/webhook/<id>, Slack's
  /services/T0/B0/<secret>) with "***". Admins see webhook URLs this way; nobody else sees them.
- `RedactingFilter` is a logging filter on the daemon's log handler. Whatever a log call formats
  (a URL with ?t=, a share link /s/<token>/, an Authorization header, a refresh token inside an
  exception's text, a traceback) is rewritten before it is written, so a log file handed to
  someone for a bug report carries no working credential. Log calls should not format secrets in
  the first place; the filter is the net under them.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"

#: Query parameter names whose values are credentials (compared without case).
SECRET_PARAMS = frozenset({
    "t", "s", "token", "access_token", "refresh_token", "id_token", "auth", "authorization", "key", "api_key",
    "apikey", "secret", "client_secret", "sig", "signature", "password", "pass", "passwd", "pwd", "session",
    "code", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
})

# A path segment that looks like a random identifier (letters and digits, 16+ characters).
_RANDOM_SEGMENT = re.compile(r"^(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_\-.~%]{16,}$")

# -- text (log lines) ----------------------------------------------------------------------------------

_PARAM_NAMES = "|".join(sorted((re.escape(p) for p in SECRET_PARAMS), key=len, reverse=True))
_TEXT_RULES: list[tuple[re.Pattern[str], str]] = [
    # ?t=..., &token=..., key=... in URLs and query strings
    (re.compile(rf"(?i)([?&;](?:{_PARAM_NAMES})=)[^&;#\s\"'<>]+"), rf"\1{MASK}"),
    # Authorization / Cookie header values, in dict reprs ('Authorization': 'Bearer x') and raw lines
    (re.compile(r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|basic|token)\s+)?[^'\"\s,}]+"),
     rf"\1{MASK}"),
    (re.compile(r"(?i)((?:set-)?cookie['\"]?\s*[:=]\s*['\"]?)[^'\"\n]+"), rf"\1{MASK}"),
    (re.compile(r"\b([Bb]earer|Basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), rf"\1 {MASK}"),  # not "basic settings"
    # Shoebox refresh and app tokens, wherever they are
    (re.compile(r"\b(sb[ra]_)[A-Za-z0-9_\-]{8,}"), rf"\1{MASK}"),
    # JWTs (access and thumbnail tokens)
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"), MASK),
    # share links: /s/<token> (the token is the credential)
    (re.compile(r"(/s/)[A-Za-z0-9_\-]{16,}"), rf"\1{MASK}"),
    # user:password@ in any URL
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@:]*:[^/\s@]*@"), rf"\1{MASK}@"),
]


def redact(text: str) -> str:
    """The text with every credential-looking part replaced by ***."""
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def mask_url(url: str) -> str:
    """The URL with credentials masked (user info, secret query values, random path segments).
    A URL that cannot be parsed is masked whole rather than shown."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{MASK}@" if parts.username is not None or parts.password is not None else "") + host
    if port is not None:
        netloc += f":{port}"
    path = "/".join(MASK if _RANDOM_SEGMENT.match(seg) else seg for seg in parts.path.split("/"))
    query = "&".join(
        f"{quote(k, safe='')}={MASK if k.lower() in SECRET_PARAMS or _RANDOM_SEGMENT.match(v) else quote(v, safe='')}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, path, query, ""))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and its traceback) with `redact` before a handler writes it.

    Installed on handlers, not loggers: a filter on a logger misses records that propagate to it
    from child loggers (aiohttp's, paho's), a filter on the handler sees every record it writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken log call: leave it to the formatter to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a RedactingFilter on every handler of `logger` (default: the root logger) that lacks one."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
