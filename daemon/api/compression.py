"""Compression of the API's JSON answers.

A month of the timeline is ~1,500 photo summaries, ~550 KB of JSON that compresses ~10×; on a
phone on Wi-Fi or over a VPN that is the difference between a grid that fills at once and one
that waits. aiohttp compresses a body larger than 1 KB in its executor, so the event loop does
not pay for it.

Not compressed: anything that is not a JSON body in memory (thumbnails and originals are JPEG,
HEIC or video and stream from files; the web app's files are pre-compressed at build time), and
the auth routes, whose answers carry tokens next to what the client sent (compressing secrets
beside attacker-chosen bytes is what BREACH measures).
"""

from __future__ import annotations

from aiohttp import web

MIN_BYTES = 1400  # one TCP segment: smaller answers gain nothing
SKIP_PREFIXES = ("/api/v1/auth/", "/api/v1/setup", "/api/v1/s/")


@web.middleware
async def compress_json(request: web.Request, handler):  # type: ignore[no-untyped-def]
    response = await handler(request)
    if (type(response) is web.Response
            and response.content_type == "application/json"
            and isinstance(response.body, bytes) and len(response.body) >= MIN_BYTES
            and "gzip" in request.headers.get("Accept-Encoding", "")
            and not request.path.startswith(SKIP_PREFIXES)
            and "Set-Cookie" not in response.headers):
        response.enable_compression()
    return response
