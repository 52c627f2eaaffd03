"""A replaying DynamoDB for B4, run as its own process: answers ``Query`` with recorded pages.

``python -m bench.fake_dynamodb --pages PAGES.json --port 0`` prints ``READY <port>`` and
answers every DynamoDB JSON-protocol ``Query`` with one of the recorded pages: the first page
when the request has no ``ExclusiveStartKey``, else the page that followed that key when it was
recorded. ``PAGES.json`` is a list of Query answers in DynamoDB's wire format (``Items``,
``Count``, ``ScannedCount``, ``LastEvaluatedKey``), e.g. recorded from moto. It does no work
per item, so it stands for an infinitely fast DynamoDB: the client's own cost is what remains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/x-amz-json-1.0"


def _key_text(key: Any) -> str:
    return json.dumps(key, sort_keys=True)


def build_app(pages: list[dict[str, Any]]) -> web.Application:
    """The application answering Query with ``pages``."""
    bodies = [json.dumps(page).encode() for page in pages]
    after_key = {
        _key_text(page["LastEvaluatedKey"]): index + 1
        for index, page in enumerate(pages)
        if "LastEvaluatedKey" in page
    }

    async def answer(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        if not target.endswith(".Query"):
            return _error(400, "UnknownOperationException", f"only Query is replayed: {target}")
        start = (await request.json()).get("ExclusiveStartKey")
        index = 0 if start is None else after_key.get(_key_text(start))
        if index is None or index >= len(bodies):
            return _error(400, "ValidationException", "no recorded page follows that key")
        return web.Response(
            body=bodies[index],
            headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": f"replay-{index}"},
        )

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/", answer)
    return app


def _error(status: int, kind: str, message: str) -> web.Response:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{kind}", "message": message})
    return web.Response(status=status, body=body.encode(), content_type=CONTENT_TYPE)


async def serve(port: int, pages: list[dict[str, Any]]) -> None:
    """Serve until killed; print READY with the bound port."""
    runner = web.AppRunner(build_app(pages), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"READY {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    """Command line: ``--pages FILE --port P``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, json.loads(args.pages.read_text())))


if __name__ == "__main__":
    main()
