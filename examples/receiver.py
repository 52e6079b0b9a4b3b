"""A minimal webhook receiver that verifies Dispatcher's signatures.

    WEBHOOK_SECRET=whsec_... python examples/receiver.py   # listens on 127.0.0.1:9000 ($PORT)

``POST /webhooks``: every request is checked with the ``standardwebhooks`` library against
``WEBHOOK_SECRET`` (the secret of the webhook that points here); ``webhook-id`` is the event id
(the same on every retry), so a real receiver would use it to ignore duplicates.
``POST /fail`` answers 500 to everything: a broken endpoint, to see retries (the README's tour).
"""

from __future__ import annotations

import os

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

verifier = Webhook(os.environ["WEBHOOK_SECRET"])
seen: set[str] = set()


async def receive(request: web.Request) -> web.Response:
    """Verify, de-duplicate, acknowledge."""
    body = await request.read()
    try:
        event = verifier.verify(body, dict(request.headers))
    except WebhookVerificationError:
        return web.Response(status=400, text="bad signature")
    msg_id = request.headers["webhook-id"]
    if msg_id not in seen:
        seen.add(msg_id)
        print(f"{event['type']} {msg_id}: {event.get('data')}", flush=True)
    return web.Response(status=204)


async def fail(request: web.Request) -> web.Response:
    """Answer 500 (after reading the body), as a broken endpoint would; Dispatcher retries."""
    await request.read()
    return web.Response(status=500, text="broken on purpose")


def main() -> None:
    """Serve on 127.0.0.1:9000 (or $PORT)."""
    app = web.Application()
    app.router.add_post("/webhooks", receive)
    app.router.add_post("/fail", fail)
    web.run_app(app, host="127.0.0.1", port=int(os.environ.get("PORT", "9000")))


if __name__ == "__main__":
    main()
