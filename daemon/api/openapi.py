"""/api/v1/openapi.json: the OpenAPI 3 document, generated from the views themselves.

aiohttp-pydantic reads each view's signature (path, query and body parameters as pydantic
types), its return annotation and its docstring. What it cannot know is added here from the
same sources of truth: each view's access policy (daemon.api.access) becomes its `security`,
and every operation gets the shared error answers. The document is built once per web app, on
first request, after every route is registered.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from aiohttp_pydantic.oas.view import generate_oas

from daemon import __version__
from daemon.api.access import policy_of
from daemon.api.errors import ErrorBody, validated

OPENAPI_KEY: web.AppKey[dict[str, Any]] = web.AppKey("shoebox_openapi")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

ERRORS = {
    "400": "bad request: malformed JSON, an unknown value, a bad cursor",
    "401": "no valid credentials (missing, expired, tampered or revoked token)",
    "403": "the credentials lack the permission this needs",
    "404": "not found",
    "413": "the request body is too large",
    "422": "a parameter or body field failed validation; `details` names each field",
    "429": "too many failed logins; see Retry-After",
}


def to_oas30(schema: Any) -> None:
    """Make a pydantic (JSON Schema 2020-12) schema valid OpenAPI 3.0, in place, recursively.

    aiohttp-pydantic translates only the top level of each property; nested Optionals, `const`
    (from a one-value Literal) and numeric exclusive bounds must be rewritten everywhere, or the
    document fails validation (schemathesis checks it)."""
    if not isinstance(schema, dict):
        return
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(schema.get(key), (int, float)) and not isinstance(schema.get(key), bool):
            schema[key.replace("exclusiveM", "m")] = schema[key]
            schema[key] = True
    schema.pop("examples", None)
    if schema.get("type") == "null":
        schema.pop("type")
        schema["nullable"] = True
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        rest = [s for s in any_of if not (isinstance(s, dict) and s.get("type") == "null")]
        if len(rest) != len(any_of):
            schema["nullable"] = True
            if len(rest) == 1:
                schema.pop("anyOf")
                only = rest[0]
                if "$ref" in only:
                    schema["allOf"] = [only]  # 3.0: no siblings next to $ref
                else:
                    for k, v in only.items():
                        schema.setdefault(k, v)
            else:
                schema["anyOf"] = rest
            if schema.get("default", ...) is None:
                schema.pop("default")
    if isinstance(schema.get("type"), list):  # ["string", "null"]
        types = [t for t in schema["type"] if t != "null"]
        if len(types) != len(schema["type"]):
            schema["nullable"] = True
        schema["type"] = types[0] if len(types) == 1 else types
    for key in ("properties", "patternProperties", "$defs"):
        for sub in (schema.get(key) or {}).values():
            to_oas30(sub)
    for key in ("items", "additionalProperties", "not"):
        to_oas30(schema.get(key))
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            to_oas30(sub)


def _schemas_of(op: dict[str, Any]) -> list[Any]:
    found = [p.get("schema") for p in op.get("parameters", [])]
    for holder in [op.get("requestBody", {}), *op.get("responses", {}).values()]:
        for media in (holder.get("content") or {}).values():
            found.append(media.get("schema"))
    return found


def build(web_app: web.Application) -> dict[str, Any]:
    spec = generate_oas([web_app], version_spec=__version__, title_spec="Shoebox API")
    spec["info"]["description"] = (
        "The Shoebox photo library API. Log in with POST /api/v1/auth/login and send "
        "`Authorization: Bearer <access_token>`; scripts use app tokens (POST /api/v1/auth/tokens). "
        "Every error is JSON: {\"error\": code, \"message\": text, \"details\": ...}.")
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    spec["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "an access token from /auth/login, or an app token (sba_...)"},
        "thumbToken": {"type": "apiKey", "in": "query", "name": "t",
                       "description": "the thumb_token from /auth/login; thumbnails only"},
    }
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for resource in web_app.router.resources():
        info = resource.get_info()
        path = info.get("path", info.get("formatter"))
        item = spec.get("paths", {}).get(path)
        if item is None:
            continue
        for route in resource:
            op = item.get(route.method.lower())
            if op is None:
                continue
            policy = policy_of(route.handler)
            if policy.scope is None:
                op["security"] = []
            else:
                op["security"] = [{"bearer": []}] + ([{"thumbToken": []}] if policy.url_token else [])
                op["description"] = (op.get("description", "") + f"\n\nNeeds the `{policy.scope.value}` scope.").strip()
            responses = op.setdefault("responses", {})
            codes = ["400", "413", "422"] + ([] if policy.scope is None else ["401", "403"])
            if any(p.get("in") == "path" for p in op.get("parameters", [])):
                codes.append("404")
            if path.endswith("/auth/login"):
                codes.append("429")
            for code in codes:
                responses.setdefault(code, {"description": ERRORS[code], "content": copy.deepcopy(error_ref)})
            for code, answer in responses.items():
                answer.setdefault("description", ERRORS.get(code, "success"))
    for item in spec.get("paths", {}).values():
        for method in METHODS:
            for schema in _schemas_of(item.get(method) or {}):
                to_oas30(schema)
    for schema in schemas.values():
        to_oas30(schema)
    return spec


@validated
async def openapi_json(request: web.Request) -> r200[dict[str, Any]]:
    """This document.

    Tags: operations
    """
    cache = request.app[OPENAPI_KEY]
    if "spec" not in cache:
        cache["spec"] = build(request.app)  # once: the router is frozen by the first request
    return web.json_response(cache["spec"])


def setup_routes(web_app: web.Application, prefix: str) -> None:
    web_app[OPENAPI_KEY] = {}
    web_app.router.add_get(f"{prefix}/openapi.json", openapi_json)
