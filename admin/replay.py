"""Replay from the console: "replay failed since…" and "send what was missed since…", each
counted first (a preview page) and done only when confirmed, exactly as
``POST /v1/webhooks/{id}/replay`` does it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from admin.deliveries import parse_time
from admin.render import redirect, render
from admin.webhooks import load
from dispatcher import missed
from dispatcher.app_keys import POOL, REGISTRY, SCHEDULER
from dispatcher.store import deliveries as delivery_store
from dispatcher.store import notify

routes = web.RouteTableDef()

MODES = {
    "failed": "Replay failed deliveries",
    "missing": "Send what was missed",
}


def _parse(form: Mapping[str, Any]) -> tuple[str, datetime | None, str | None]:
    """``(mode, since, error)`` from the replay form."""
    mode = str(form.get("mode", "failed"))
    if mode not in MODES:
        mode = "failed"
    raw = str(form.get("since", "")).strip()
    if not raw:
        return mode, None, "Choose when to replay from."
    try:
        since = parse_time(raw)
    except ValueError:
        return mode, None, "Enter a date and time, like 2026-11-25 14:00 (UTC)."
    if since is not None and since > datetime.now(UTC):
        return mode, None, "Choose a time in the past."
    return mode, since, None


async def _count(request: web.Request, webhook: dict[str, Any], mode: str, since: datetime) -> int:
    pool = request.app[POOL]
    if mode == "failed":
        return await delivery_store.count_replay(pool, webhook["id"], "failed", since)
    async with pool.acquire() as conn:
        return await missed.replay_missing(
            conn,
            webhook["id"],
            webhook["event_types"],
            request.app[REGISTRY].disabled_types,
            since,
            dry_run=True,
        )


@routes.get("/admin/webhooks/{id}/replay")
async def replay_preview(request: web.Request) -> web.Response:
    """How many deliveries the replay would queue, and a form to confirm it."""
    webhook = await load(request)
    mode, since, error = _parse(request.query)
    count = 0 if since is None else await _count(request, webhook, mode, since)
    return render(
        request,
        "replay_confirm.html",
        {
            "nav": "webhooks",
            "webhook": webhook,
            "mode": mode,
            "title": MODES[mode],
            "since": since,
            "since_value": str(request.query.get("since", "")),
            "error": error,
            "count": count,
        },
        status=422 if error else 200,
    )


@routes.post("/admin/webhooks/{id}/replay")
async def replay_apply(request: web.Request) -> web.Response:
    """Queue the replay (failed deliveries again, or the missed events for the first time)."""
    webhook = await load(request)
    mode, since, error = _parse(await request.post())
    back = f"/admin/webhooks/{webhook['id']}"
    if since is None:
        return redirect(request, back, ("error", error or "Choose when to replay from."))
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        if mode == "failed":
            async with conn.transaction():
                count = await delivery_store.replay(conn, webhook["id"], "failed", since)
                await notify(conn, "wake")
        else:
            count = await missed.replay_missing(
                conn,
                webhook["id"],
                webhook["event_types"],
                request.app[REGISTRY].disabled_types,
                since,
            )
            await notify(conn, "wake")
    request.app[SCHEDULER].wake.set()
    noun = "delivery" if count == 1 else "deliveries"
    done = (
        f"{count:,} failed {noun} queued again."
        if mode == "failed"
        else f"{count:,} missed {noun} created and queued."
    )
    if count and not webhook["enabled"]:
        done += " They are held until the webhook is enabled."
    return redirect(request, f"{back}/logs", ("success", done))
