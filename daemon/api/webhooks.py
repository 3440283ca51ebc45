"""Webhook subscriptions for admins: /api/v1/webhooks (issue 5).

The store functions live in daemon.events.webhooks (the `shoebox webhooks` command uses the same
ones); this module only validates, answers JSON and tells the running WebhookManager to pick the
change up at once, instead of at its next reload a few seconds later. The secret is returned
once, when the subscription is made (generated if none is given); listings show "***".

Least information: only admins reach these routes, and even they get URLs with credentials
masked (user:password@, token=/key=/secret=/sig= values, random path segments: "***"). A target
on loopback, link-local or another non-routable address is refused with a 400 when the
subscription is made or its URL changed, unless `[webhooks] allow_private_targets` allows it
(daemon.events.targets; every delivery checks again).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Annotated, Any, Optional

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r204
from pydantic import BaseModel, ConfigDict, Field

from daemon.api.access import principal, requires
from daemon.api.errors import ApiError, validated
from daemon.api.keys import APP_KEY
from daemon.app import App
from daemon.auth.roles import Scope
from daemon.events import webhooks as store
from daemon.events.targets import TargetRefused
from daemon.redaction import mask_url

log = logging.getLogger(__name__)

WebhookId = Annotated[int, Field(ge=1, le=2**62, description="webhook subscription id")]
EventPattern = Annotated[str, Field(min_length=1, max_length=64, description="an event type, a prefix like photo.*, or *")]
URL_HELP = "http:// or https:// URL that receives the POSTs"
SECRET_HELP = "HMAC-SHA256 key (16 to 200 characters); generated when left out"


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2000, description=URL_HELP)
    events: list[EventPattern] = Field(default_factory=list, max_length=50, description="[] or left out: every event")
    secret: Optional[str] = Field(default=None, min_length=16, max_length=200, description=SECRET_HELP)
    enabled: bool = True


class WebhookChanges(BaseModel):
    """Fields to change; a field left out stays. Enabling again clears the failure count."""

    model_config = ConfigDict(extra="forbid")
    url: Optional[str] = Field(default=None, min_length=1, max_length=2000, description=URL_HELP)
    events: Optional[list[EventPattern]] = Field(default=None, max_length=50)
    secret: Optional[str] = Field(default=None, min_length=16, max_length=200, description=SECRET_HELP)
    enabled: Optional[bool] = None


class WebhookOut(BaseModel):
    id: int
    url: str = Field(description="the URL with credentials in it masked as ***")
    events: list[str]
    secret: str = Field(description='"***": the secret is shown only when the subscription is made')
    enabled: bool
    failures: int = Field(description="failed attempts in a row")
    retry_at: Optional[float] = Field(default=None, description="Unix time of the next attempt after a failure")
    disabled_reason: Optional[str] = None
    created_at: str
    updated_at: str


class WebhookCreated(WebhookOut):
    secret: str = Field(description="shown once: receivers verify X-Shoebox-Signature with it")


class Delivery(BaseModel):
    event_id: str
    event_type: str
    attempt: int
    ok: bool
    status: Optional[int] = None
    latency_ms: Optional[float] = None
    error: Optional[str] = None
    at: str


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


def _error(exc: store.WebhookError, field: str | None = None) -> ApiError:
    message = str(exc)
    if message.startswith("no webhook"):
        return ApiError(404, "not_found", message)
    if field is None:
        field = "url" if "URL" in message else "secret" if "secret" in message else "events"
    return ApiError(400, "bad_request", message, {"field": field})


async def _check_target(request: web.Request, url: str) -> None:
    """400 for a URL whose host resolves to an address webhooks may not reach. A host that does
    not resolve now is accepted (a receiver may be offline); each delivery checks again."""
    try:
        url = store.check_url(url)
        policy = store.WebhookSettings.from_section(_app(request).config.section("webhooks")).targets
    except store.WebhookError as exc:
        raise _error(exc, "url") from None
    except ValueError as exc:
        raise ApiError(500, "bad_setting", f"[webhooks] allow_private_targets: {exc}") from None
    try:
        await policy.check_url(url)
    except TargetRefused as exc:
        raise ApiError(400, "bad_request", str(exc), {"field": "url"}) from None
    except OSError:
        pass


async def _write(request: web.Request, fn: Any) -> Any:
    app = _app(request)
    assert app.db is not None
    try:
        result = await app.db.write(fn)
    except store.WebhookError as exc:
        raise _error(exc) from None
    manager = app.events.webhooks if app.events is not None else None
    if manager is not None:  # `serve`: start, change or stop the subscription's transport now
        await manager.sync()
    return result


@requires(Scope.ADMIN)
@validated
async def list_webhooks(request: web.Request) -> r200[list[WebhookOut]]:
    """Every webhook subscription (secrets hidden).

    Tags: webhooks
    """
    app = _app(request)
    assert app.db is not None
    return web.json_response([s.public() for s in await app.db.read(store.list_webhooks)])


@requires(Scope.ADMIN)
@validated
async def create_webhook(request: web.Request, body: WebhookBody) -> r201[WebhookCreated]:
    """Subscribe a URL to events. It receives what happens from now on, as signed JSON POSTs
    (README: Webhooks). The answer is the only time the secret is shown.

    Tags: webhooks
    Status Codes:
        201: the subscription, with its secret
        400: a URL that is not http(s) or whose host is loopback, link-local or otherwise not
             routable (unless allowed), an unknown event type, a short secret
    """
    await _check_target(request, body.url)

    def create(conn: sqlite3.Connection) -> store.Subscription:
        sub = store.create_webhook(conn, body.url, list(body.events), body.secret)
        if not body.enabled:
            sub = store.update_webhook(conn, sub.id, enabled=False)
        return sub

    sub = await _write(request, create)
    who = principal(request)
    log.info("%s added webhook %d for %s", who.username, sub.id, mask_url(sub.url))
    return web.json_response({**sub.public(), "secret": sub.secret}, status=201)


@requires(Scope.ADMIN)
@validated
async def get_webhook(request: web.Request, webhook_id: WebhookId, /) -> r200[WebhookOut]:
    """One subscription: its state, failures in a row and why it was disabled.

    Tags: webhooks
    """
    app = _app(request)
    assert app.db is not None
    try:
        sub = await app.db.read(lambda c: store.get_webhook(c, webhook_id))
    except store.WebhookError as exc:
        raise _error(exc) from None
    return web.json_response(sub.public())


@requires(Scope.ADMIN)
@validated
async def edit_webhook(request: web.Request, webhook_id: WebhookId, /, body: WebhookChanges) -> r200[WebhookOut]:
    """Change the URL, event types or secret, or turn the subscription off or on again. A new URL
    is checked like a new subscription's.

    Tags: webhooks
    """
    given = body.model_fields_set
    for name in ("url", "enabled"):
        if name in given and getattr(body, name) is None:
            raise ApiError(400, "bad_request", f"{name} cannot be null", {"field": name})
    if body.url is not None:
        await _check_target(request, body.url)
    events = None if body.events is None else list(body.events)
    sub = await _write(request, lambda c: store.update_webhook(c, webhook_id, url=body.url, events=events,
                                                               secret=body.secret, enabled=body.enabled))
    return web.json_response(sub.public())


@requires(Scope.ADMIN)
@validated
async def delete_webhook(request: web.Request, webhook_id: WebhookId, /) -> r204:
    """Remove a subscription and its delivery log; events not yet delivered to it are dropped.

    Tags: webhooks
    """
    await _write(request, lambda c: store.delete_webhook(c, webhook_id))
    return web.Response(status=204)


@requires(Scope.ADMIN)
@validated
async def list_deliveries(request: web.Request, webhook_id: WebhookId, /,
                          limit: int = Field(50, ge=1, le=store.DELIVERY_LOG_KEEP)) -> r200[list[Delivery]]:
    """The delivery log, newest first: each attempt's HTTP status, latency and error.

    Tags: webhooks
    """
    app = _app(request)
    assert app.db is not None
    try:
        rows = await app.db.read(lambda c: store.list_deliveries(c, webhook_id, limit))
    except store.WebhookError as exc:
        raise _error(exc) from None
    return web.json_response(rows)


def setup_routes(web_app: web.Application, prefix: str) -> None:
    r = web_app.router
    r.add_get(f"{prefix}/webhooks", list_webhooks)
    r.add_post(f"{prefix}/webhooks", create_webhook)
    r.add_get(f"{prefix}/webhooks/{{webhook_id}}", get_webhook)
    r.add_patch(f"{prefix}/webhooks/{{webhook_id}}", edit_webhook)
    r.add_delete(f"{prefix}/webhooks/{{webhook_id}}", delete_webhook)
    r.add_get(f"{prefix}/webhooks/{{webhook_id}}/deliveries", list_deliveries)
