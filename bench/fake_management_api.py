"""A fake API Gateway management API for benchmarks, run as its own process.

``python -m bench.fake_management_api --port P --delay-ms 10`` answers every
``POST /{stage}/@connections/{id}`` with 200 after the delay, and prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def build_app(delay: float) -> web.Application:
    async def post(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(delay)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{stage}/@connections/{connection_id}", post)
    return app


async def serve(port: int, delay: float) -> None:
    runner = web.AppRunner(build_app(delay), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=2048)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"READY {bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
