"""One error shape for the whole API: {"error": code, "message": text, "details": ...}.

Why a middleware and not try/except in each view: a view raises ApiError (or an AuthError, or
aiohttp's own HTTP exceptions such as 413 for a body over the size limit) and this one place
turns all of them into the same JSON, so a client never has to parse an HTML error page and an
unexpected exception is logged and answered 500 without leaking its text.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp_pydantic.decorator import inject_params
from pydantic import BaseModel, ValidationError

from daemon.auth.errors import AuthError, TooManyAttempts

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success, raised by a view."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, {"field": field} if field else None)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str
    message: str
    details: Any = None


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message, "details": details}, status=status,
                             headers=headers)


_CONTEXT = {"query string": "query", "body": "body", "path": "path", "headers": "header"}


async def validation_failed(exc: ValidationError, context: str) -> web.StreamResponse:
    """422 naming each field that failed: `body.rating: Input should be less than or equal to 5`."""
    where = _CONTEXT.get(context, context)
    problems = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = ".".join(str(p) for p in (where, *err["loc"]))
        problems.append({"field": loc, "message": err["msg"], "type": err["type"]})
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return error_response(422, "validation_failed", message or f"invalid {where}", problems)


# The decorator every view uses: parameters from the path (positional-only), query (plain),
# body (a pydantic model) are validated and injected, and feed the OpenAPI document.
validated = inject_params(on_validation_error=validation_failed).and_request


def _code_for(exc: web.HTTPException) -> str:
    return (exc.reason or "error").lower().replace(" ", "_").replace("-", "_")


@web.middleware
async def json_errors(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Every error under /api (and /metrics) answers JSON, never an HTML page or a traceback."""
    if not (request.path.startswith("/api/") or request.path == "/metrics"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    except TooManyAttempts as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, {"Retry-After": str(exc.retry_after)})
    except AuthError as exc:
        headers = {"WWW-Authenticate": 'Bearer realm="shoebox"'} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        details = None
        if exc.content_type == "application/json" and exc.text:
            try:
                details = json.loads(exc.text)
            except ValueError:
                details = None
        message = exc.reason if details is not None else (exc.text or exc.reason)
        if exc.status == 400 and isinstance(details, dict) and "Malformed JSON" in str(details.get("error")):
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        if exc.status == 400 and isinstance(details, list):
            return error_response(400, "bad_request", "the request body must be a JSON object", details)
        if exc.status == 413:
            message = f"the request body is larger than the limit of {request.app._client_max_size} bytes"
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        return error_response(exc.status, _code_for(exc), message, details, headers)
    except UnicodeDecodeError:
        return error_response(400, "malformed_json", "the request body is not valid UTF-8 text")
    except RecursionError:  # json.loads on [[[[...]]]] thousands deep
        return error_response(400, "malformed_json", "the request body is nested too deeply")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error, see the daemon's log")
