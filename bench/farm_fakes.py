"""Fakes for the farm benchmark, in a process of their own so their CPU is not the daemon's.

One aiohttp server on 127.0.0.1 holds, for each of N printers:

- a minimal Moonraker websocket at ``/printer/<i>/websocket`` speaking just what the
  daemon needs (identify, server.info, objects list/subscribe, history, and "ok" for
  anything else), Klippy ready and a print running, with a ``notify_status_update``
  every 250 ms like Moonraker's own cadence while printing;
- a snapshot URL ``/printer/<i>/snapshot`` serving a 1280x720 JPEG (~125 KB);

and one Obico-style predict endpoint shared by all (the real fake from ``sim``) that
answers after ``--latency`` seconds of "inference". Not the real Moonraker: fifty of
those would cost more than the daemon under test and measure themselves.

Prints ``<base url> <predict url>`` on one line, then serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from aiohttp import WSMsgType, web

from sim.camera import make_snapshot_jpeg
from sim.predictor import FakeObicoPredictor

SERIAL_NO = "BENCH-FARM"
ACCESS_TOKEN = "bench-farm-token"
STATUS_EVERY = 0.25


class FakeFarm:
    def __init__(self, printers: int) -> None:
        self.printers = printers
        self.jpeg = make_snapshot_jpeg()
        self.started = time.time()
        self.sockets: dict[int, web.WebSocketResponse] = {}
        self.calls: dict[str, int] = {}

    def status(self, index: int) -> dict[str, Any]:
        elapsed = time.time() - self.started
        return {
            "print_stats": {"state": "printing", "filename": f"bench-{index}.gcode",
                            "total_duration": elapsed, "print_duration": elapsed},
            "webhooks": {"state": "ready", "state_message": "Printer is ready"},
            "heaters": {"available_heaters": ["extruder", "heater_bed"]},
            "display_status": {"progress": min(1.0, elapsed / 3600)},
        }

    def answer(self, index: int, method: str, params: Any) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        if method == "server.connection.identify":
            return {"connection_id": 1000 + index}
        if method == "server.info":
            return {"klippy_state": "ready", "moonraker_version": "bench-fake"}
        if method == "printer.objects.list":
            return {"objects": ["print_stats", "webhooks", "heaters", "display_status"]}
        if method == "printer.objects.subscribe":
            return {"eventtime": time.monotonic(), "status": self.status(index)}
        if method == "server.history.list":
            return {"count": 1, "jobs": [{"job_id": f"{index:06X}", "status": "in_progress",
                                          "filename": f"bench-{index}.gcode",
                                          "start_time": self.started}]}
        if method == "server.webcams.list":
            return {"webcams": []}
        return "ok"

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        index = int(request.match_info["index"])
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.sockets[index] = ws
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" not in data:
                    continue
                result = self.answer(index, data.get("method", ""), data.get("params"))
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": data["id"],
                                              "result": result}))
        finally:
            if self.sockets.get(index) is ws:
                del self.sockets[index]
        return ws

    async def snapshot(self, request: web.Request) -> web.Response:
        return web.Response(body=self.jpeg, content_type="image/jpeg")

    async def push_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            elapsed = time.time() - self.started
            for index, ws in list(self.sockets.items()):
                diff = {"print_stats": {"total_duration": elapsed, "print_duration": elapsed},
                        "display_status": {"progress": min(1.0, elapsed / 3600)}}
                message = {"jsonrpc": "2.0", "method": "notify_status_update",
                           "params": [diff, time.monotonic()]}
                try:
                    await ws.send_str(json.dumps(message))
                except (ConnectionError, RuntimeError):
                    self.sockets.pop(index, None)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--printers", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    farm = FakeFarm(args.printers)
    app = web.Application()
    app.router.add_get("/printer/{index}/websocket", farm.websocket)
    app.router.add_get("/printer/{index}/snapshot", farm.snapshot)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=512)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    pusher = asyncio.create_task(farm.push_status())
    async with FakeObicoPredictor(SERIAL_NO, ACCESS_TOKEN) as predictor:
        predictor.latency = args.latency
        print(f"http://127.0.0.1:{port}", predictor.url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        print(json.dumps({"predictions": len(predictor.requests), "calls": farm.calls}),
              flush=True)
    pusher.cancel()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
