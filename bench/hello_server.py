"""The HTTP reference for the verifier benchmark: a bare aiohttp handler answering a POST with a
25-byte application/octet-stream body (the size of a binary auth OK reply), reading the body as
the real handler does. Prints `ready <port>` once listening."""

import sys

from aiohttp import web

_REPLY = bytes(25)


async def hello(request):
    await request.read()
    return web.Response(body=_REPLY, content_type="application/octet-stream")


def main(port):
    app = web.Application()
    app.router.add_post("/v1/binauth", hello)

    async def announce(app):
        print("ready", port, flush=True)

    app.on_startup.append(announce)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
