"""`shoebox webhooks add|list|remove|enable|disable|deliveries`: manage webhook subscriptions.

It works on the database directly, beside a running daemon (SQLite WAL lets both write); the
daemon picks changes up within a few seconds. The API offers the same to admins.

Like the API, the command never prints credentials that are part of a URL (they are masked as
***), and `add` refuses loopback, link-local and other non-routable targets unless
`[webhooks] allow_private_targets` allows them (exit 2 with the reason).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, Callable

from daemon.config import Config


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    p = sub.add_parser("webhooks", help="manage webhook subscriptions (signed JSON POSTs of events)")
    actions = p.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=text)
        common(a)  # --library/--data/--config after the action, like every other command
        return a

    a = action("add", "subscribe a URL to events; prints the id (and the secret, if generated)")
    a.add_argument("url")
    a.add_argument("--events", default="", help="comma-separated event types, e.g. photo.added,person.recognized "
                                                "or photo.* (default: every event)")
    a.add_argument("--secret-stdin", action="store_true",
                   help="read the signing secret from standard input (default: generate one and print it once)")
    action("list", "every subscription (secrets hidden)").add_argument("--json", action="store_true")
    action("remove", "delete a subscription and its delivery log").add_argument("id", type=int)
    action("enable", "turn a subscription on again (clears its failures)").add_argument("id", type=int)
    action("disable", "turn a subscription off").add_argument("id", type=int)
    a = action("deliveries", "recent delivery attempts: status, latency, error")
    a.add_argument("id", type=int)
    a.add_argument("--limit", type=int, default=20)
    a.add_argument("--json", action="store_true")


def cmd_webhooks(config: Config, args: argparse.Namespace) -> int:
    return asyncio.run(_run(config, args))


async def _run(config: Config, args: argparse.Namespace) -> int:
    from daemon.events.targets import TargetRefused
    from daemon.events.webhooks import (WebhookError, WebhookSettings, check_url, create_webhook, delete_webhook,
                                        list_deliveries, list_webhooks, update_webhook)
    from daemon.redaction import mask_url
    from daemon.store.db import Database
    from daemon.system.permissions import private_dir

    if args.webhooks_command == "add":  # before the database is opened: a refused target changes nothing
        try:
            policy = WebhookSettings.from_section(config.section("webhooks")).targets
            await policy.check_url(check_url(args.url))
        except TargetRefused as exc:
            print(f"shoebox: {exc}", file=sys.stderr)
            return 2
        except (WebhookError, ValueError) as exc:
            print(f"shoebox: {exc}", file=sys.stderr)
            return 2
        except OSError:
            pass  # does not resolve now; every delivery checks again

    private_dir(config.data)  # may be the first command on a new data directory: 0700 from the start
    db = await Database.open(config.data / "shoebox.db", readers=1)
    try:
        action = args.webhooks_command
        if action == "add":
            secret = None
            if args.secret_stdin:
                secret = sys.stdin.readline().strip()
                if not secret:
                    print("shoebox: no secret on standard input", file=sys.stderr)
                    return 2
            events = [e for e in args.events.split(",") if e.strip()]
            sub = await db.write(lambda c: create_webhook(c, args.url, events, secret))
            print(f"webhook {sub.id}: {mask_url(sub.url)} ({', '.join(sub.events) or 'every event'})")
            if not args.secret_stdin:
                print(f"secret: {sub.secret}")
                print("(shown once; receivers verify X-Shoebox-Signature with it)", file=sys.stderr)
        elif action == "list":
            subs = await db.read(list_webhooks)
            if args.json:
                print(json.dumps([s.public() for s in subs], indent=2))
            for s in [] if args.json else subs:
                state = "on" if s.enabled else f"off ({s.disabled_reason})" if s.disabled_reason else "off"
                fails = f", {s.failures} failures in a row" if s.failures else ""
                print(f"{s.id}  {mask_url(s.url)}  [{', '.join(s.events) or 'every event'}]  {state}{fails}")
        elif action == "remove":
            await db.write(lambda c: delete_webhook(c, args.id))
            print(f"webhook {args.id} removed")
        elif action in ("enable", "disable"):
            sub = await db.write(lambda c: update_webhook(c, args.id, enabled=action == "enable"))
            print(f"webhook {sub.id} {'enabled' if sub.enabled else 'disabled'}")
        elif action == "deliveries":
            rows = await db.read(lambda c: list_deliveries(c, args.id, args.limit))
            if args.json:
                print(json.dumps(rows, indent=2))
            for r in [] if args.json else rows:
                status = r["status"] if r["status"] is not None else "-"
                latency = f"{r['latency_ms']:.0f} ms" if r["latency_ms"] is not None else "-"
                print(f"{r['at']}  {r['event_type']:<18} {r['event_id']}  try {r['attempt']}  "
                      f"{'ok' if r['ok'] else 'FAILED'}  {status}  {latency}  {r['error'] or ''}".rstrip())
        return 0
    except WebhookError as exc:
        print(f"shoebox: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.close()
