"""Every role against every operation of /api/v1/openapi.json (issue 9, "tests that must exist").

Schemathesis generates requests from the OpenAPI document of a real `shoebox serve` with an indexed
library, once as each of: an admin, a user, a viewer (each with their own login session) and a
share-link guest (no account, only the link's token). For every role it checks what that person
would notice:

- no answer is a 5xx;
- an operation that needs a scope the role lacks (the document says which: "Needs the `x` scope")
  never succeeds for it and is refused with 403 (401 for the guest, who has no account);
- a guest's token opens only what the link shares: no other photo's id or thumbnail key appears in
  any answer, and another photo asked for through the link is 404;
- only an admin ever sees the webhook subscription (its URL), and nobody sees another person's
  share link.

The generated path parameters are mixed with real values (photo ids, thumbnail keys, the admin's
share id, the guest's token) so the requests reach real data, not only "not found". The admin's
own broad fuzzing lives in tests/integration/test_api_security.py; here the admin run is small and
is there for the comparison (the same requests that are refused to others do succeed for it).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from tests.integration.api_support import (PASSWORD, Daemon, clone, create_admin, http_json)
from tests.integration.support import shoebox

# slow: schemathesis against a real shoebox serve
pytestmark = pytest.mark.slow

HOOK_MARK = "kitchen-frame"  # in the webhook's URL: only an admin may ever see it
SCOPES = {"admin": {"read", "write", "admin", "thumbnails"}, "user": {"read", "write", "thumbnails"},
          "viewer": {"read", "thumbnails"}, "guest": set()}
# Calls that would end the caller's own login while the run goes on (they are tested elsewhere),
# and, for the admin, calls that reach outside this machine's test data: a generated webhook URL
# could name any address, an import any folder.
NOT_FUZZED = {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/auth/sessions/{session_id}"),
              ("GET", "/api/v1/live")}
NOT_FUZZED_FOR_ADMIN = {("POST", "/api/v1/webhooks"), ("PATCH", "/api/v1/webhooks/{webhook_id}"),
                        ("POST", "/api/v1/import"), ("DELETE", "/api/v1/photos/{uid}")}
MAX_EXAMPLES = 2  # per operation and role; 1 where the role is refused before its input is read
NEEDS = re.compile(r"Needs the `(\w+)` scope")


@pytest.fixture(scope="module")
def daemon(indexed: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real `shoebox serve` with five indexed photos, three accounts, a webhook and a share link
    of one photo."""
    library, data = clone(indexed, tmp_path_factory.mktemp("fuzz"))
    create_admin(library, data)
    common = ["--library", str(library), "--data", str(data)]
    for name, role in (("bob", "user"), ("vic", "viewer")):
        shoebox("users", "add", name, "--role", role, "--password-stdin", *common, input=PASSWORD + "\n")
    # a disabled subscription on the loopback discard port: nothing is ever delivered anywhere
    shoebox("webhooks", "add", f"http://127.0.0.1:9/{HOOK_MARK}", "--events", "photo.added", "--secret-stdin",
            *common, input="a webhook secret of some length\n",
            env={"SHOEBOX_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "127.0.0.1:9"})
    shoebox("webhooks", "disable", "1", *common)
    with Daemon(library, data) as d:
        sessions = {name: d.login(name)["access_token"] for name in ("admin", "bob", "vic")}
        status, page = http_json("GET", f"{d.base}/api/v1/photos?limit=100", token=sessions["admin"])
        assert status == 200, page
        photos = [(p["id"], p["thumb_key"]) for p in page["photos"]]
        assert len(photos) == 5
        shared_uid, shared_key = photos[0]
        status, share = http_json("POST", f"{d.base}/api/v1/shares", {"photos": [shared_uid], "download": True},
                                  token=sessions["admin"])
        assert status == 201, share
        status, openapi = http_json("GET", f"{d.base}/api/v1/openapi.json", token=sessions["admin"])
        assert status == 200
        import schemathesis  # the same document for everyone; fetched by the admin
        operations = [result.ok() for result in schemathesis.openapi.from_dict(openapi).get_all_operations()]
        yield {"daemon": d, "operations": operations, "sessions": sessions, "photos": photos, "shared": (shared_uid, shared_key),
               "share": share}


def _fuzz(ctx: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Run every operation for one role; one record per request: method, pattern, path parameters,
    status, body, the scope it needs."""
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st

    d: Daemon = ctx["daemon"]
    headers = {} if role == "guest" else {"Authorization": f"Bearer {ctx['sessions'][dict(admin='admin', user='bob', viewer='vic')[role]]}"}
    uids = [uid for uid, _ in ctx["photos"]]
    seeds = {"uid": uids, "thumb_key": [key for _, key in ctx["photos"]], "share_id": [ctx["share"]["id"]],
             "webhook_id": ["1"], "token": [ctx["share"]["token"]]}
    records: list[dict[str, Any]] = []
    session = requests.Session()  # keep-alive: the run measures the API, not TCP handshakes
    calls = [0.0]
    for operation in ctx["operations"]:
        key = (operation.method.upper(), operation.path)
        if key in NOT_FUZZED or (role == "admin" and key in NOT_FUZZED_FOR_ADMIN):
            continue
        found = NEEDS.search(operation.definition.raw.get("description", ""))
        needs = found.group(1) if found else None
        fixed = {"token": ctx["share"]["token"]} if role == "guest" and "{token}" in operation.path else None

        refused = needs is not None and needs not in SCOPES[role]

        @settings(max_examples=1 if refused else MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate])
        @given(case=operation.as_strategy(path_parameters=fixed),
               picks=st.fixed_dictionaries({k: st.one_of(st.none(), st.sampled_from(v)) for k, v in seeds.items()}))
        def run(case: Any, picks: dict[str, Any]) -> None:
            for name, value in picks.items():
                if value is not None and case.path_parameters and name in case.path_parameters and not (
                        fixed and name in fixed):
                    case.path_parameters[name] = value
            t0 = time.monotonic()
            response = case.call(base_url=d.base, headers=headers, timeout=15, session=session)
            calls[0] += time.monotonic() - t0
            records.append({"method": key[0], "pattern": key[1], "params": dict(case.path_parameters or {}),
                            "status": response.status_code, "body": response.content.decode("utf-8", "replace"), "needs": needs,
                            "request": f"{case.method} {case.formatted_path} {case.query} {case.body!r:.120}"})

        run()
    session.close()
    print(f"{role}: {calls[0]:.1f} s waiting for answers")
    return records


def _check_common(records: list[dict[str, Any]], role: str) -> None:
    assert len({(r["method"], r["pattern"]) for r in records}) >= 40
    errors = [f"{r['request']} -> {r['status']} {r['body'][:200]}" for r in records if r["status"] >= 500]
    assert not errors, f"{role}: server errors:\n" + "\n".join(errors[:20])
    if role != "admin":
        leaks = [r["request"] for r in records if HOOK_MARK in r["body"]]
        assert not leaks, f"{role} saw the webhook URL: {leaks[:5]}"


def _check_scopes(records: list[dict[str, Any]], role: str) -> None:
    """What a role may not do never succeeds, and is refused as such (403; 401 for the guest)."""
    refused_code = 401 if role == "guest" else 403
    by_op: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r["needs"] is not None and r["needs"] not in SCOPES[role]:
            by_op.setdefault((r["method"], r["pattern"]), []).append(r)
    assert by_op or role == "admin"
    for (method, pattern), rs in by_op.items():
        succeeded = [f"{r['request']} -> {r['status']}" for r in rs if r["status"] < 400]
        assert not succeeded, f"{role} got through {method} {pattern}: {succeeded[:3]}"
        assert any(r["status"] == refused_code for r in rs), \
            f"{role}: {method} {pattern} answered {sorted({r['status'] for r in rs})}, never {refused_code}"


@pytest.mark.parametrize("role", ["guest", "viewer", "user", "admin"])  # admin last: it may change data
def test_every_role_gets_no_server_error_and_nothing_it_should_not(daemon: dict[str, Any], role: str) -> None:
    d: Daemon = daemon["daemon"]
    if role == "admin":
        # the webhook is there to be seen, by an admin: the other roles' silence above means something
        status, hooks = http_json("GET", f"{d.base}/api/v1/webhooks", token=daemon["sessions"]["admin"])
        assert status == 200 and HOOK_MARK in str(hooks)
    started = time.monotonic()
    records = _fuzz(daemon, role)
    elapsed = time.monotonic() - started
    statuses: dict[int, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    print(f"{role}: {len(records)} requests in {elapsed:.1f} s: {dict(sorted(statuses.items()))}")
    _check_common(records, role)
    _check_scopes(records, role)
    if role == "guest":
        shared_uid, shared_key = daemon["shared"]
        others = [v for uid, key in daemon["photos"] if uid != shared_uid for v in (uid, key)]
        # (an answer may repeat the id that was asked for — "no photo X" — that tells nothing)
        leaks = [r["request"] for r in records if any(o in r["body"] and o not in r["request"] for o in others)]
        assert not leaks, f"the guest saw photos the link does not share: {leaks[:5]}"
        through_link = [r for r in records if r["pattern"].startswith("/api/v1/s/{token}/")
                        and r["params"].get("uid") in others]
        assert through_link, "no generated guest request asked for an unshared photo"
        assert all(r["status"] == 404 for r in through_link), [(r["request"], r["status"]) for r in through_link]
        # and the link does open what it shares (so the refusals above are about sharing)
        assert any(r["status"] == 200 and shared_uid in r["body"] for r in records)
    if role in ("user", "viewer"):
        share_id = daemon["share"]["id"]
        seen = [r["request"] for r in records if share_id in r["body"] and share_id not in r["request"]]
        assert not seen, f"{role} saw the admin's share link: {seen[:5]}"
        # asked for by its id, the admin's link is not there for them (and so cannot be changed or revoked)
        token = daemon["sessions"]["bob" if role == "user" else "vic"]
        for method, body in (("GET", None), ("PATCH", {"title": "mine now"}), ("DELETE", None)):
            status, _ = http_json(method, f"{d.base}/api/v1/shares/{share_id}", body, token=token)
            assert status in (403, 404), (role, method, status)
        status, mine = http_json("GET", f"{d.base}/api/v1/shares/{share_id}", token=daemon["sessions"]["admin"])
        assert status == 200 and mine["active"] and mine.get("title") != "mine now"  # untouched
    assert http_json("GET", f"{d.base}/api/v1/health")[0] == 200
