"""A stand-in for a model's download host (Obico's S3 bucket), on 127.0.0.1.

It serves whatever file a test puts in ``files`` and every way such a host
fails a downloader: an HTML error page with status 200, an S3-style XML error,
a 404, and a transfer cut half-way through a file whose length was announced.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sim._http import LocalHTTPServer

__all__ = ["FakeModelHost"]

ERROR_PAGE = ("<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
              "<body><h1>Sorry</h1><p>Try again later.</p></body></html>")


class FakeModelHost:
    """``/<name>`` serves ``files[name]``; ``/page/...``, ``/xml/...``, ``/cut/<name>`` fail."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        app = web.Application()
        app.router.add_get("/page/{tail:.*}", self._page)
        app.router.add_get("/xml/{tail:.*}", self._xml)
        app.router.add_get("/cut/{name}", self._cut)
        app.router.add_get("/{name}", self._file)
        self._http = LocalHTTPServer(app)

    @property
    def url(self) -> str:
        return self._http.base_url

    async def __aenter__(self) -> FakeModelHost:
        await self._http.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.stop()

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append(request.path)
        if name not in self.files:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=self.files[name], content_type="application/octet-stream")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        return web.Response(text=ERROR_PAGE, content_type="text/html")

    async def _xml(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                "<Message>Access Denied</Message></Error>")
        return web.Response(text=body, content_type="application/octet-stream")

    async def _cut(self, request: web.Request) -> web.StreamResponse:
        """Announce the whole file, send half of it, then drop the connection."""
        self.requests.append(request.path)
        data = self.files[request.match_info["name"]]
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        return response
