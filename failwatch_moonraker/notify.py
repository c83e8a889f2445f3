"""Notifications beyond the console: webhooks and, optionally, Apprise.

They run after the printer has been acted on, each with a timeout, and a
failure is logged and never retried in a loop: the pause matters more than
the message about it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


@dataclass
class Event:
    """What a notification says; ``image`` is the annotated JPEG when there is one."""

    printer: str
    print_id: str | None
    filename: str
    level: str
    message: str
    p: float
    stats: dict[str, Any]
    image: bytes | None = None
    image_path: str = ""
    image_link: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self, include_image: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "source": "failwatch",
            "printer": self.printer,
            "print": {"id": self.print_id, "filename": self.filename},
            "level": self.level,
            "message": self.message,
            "p": self.p,
            "stats": self.stats,
            "image_link": self.image_link or None,
        }
        if include_image and self.image:
            body["image"] = {"content_type": "image/jpeg",
                             "base64": base64.b64encode(self.image).decode("ascii")}
        body.update(self.extra)
        return body


class Notifier:
    def __init__(self, session: aiohttp.ClientSession, webhook_urls: Sequence[str],
                 apprise_urls: Sequence[str] = (), timeout: float = 10.0,
                 include_image: bool = True) -> None:
        self._session = session
        self.webhook_urls = tuple(webhook_urls)
        self.apprise_urls = tuple(apprise_urls)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.include_image = include_image
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_urls or self.apprise_urls)

    async def send(self, event: Event) -> None:
        """Send to every channel concurrently; never raises."""
        jobs = [self._webhook(url, event) for url in self.webhook_urls]
        if self.apprise_urls:
            jobs.append(self._apprise(event))
        await asyncio.gather(*jobs, return_exceptions=True)

    async def _webhook(self, url: str, event: Event) -> None:
        shown = _redact_url(url)
        try:
            async with self._session.post(url, json=event.payload(self.include_image),
                                          timeout=self._timeout) as resp:
                if resp.status >= 300:
                    log.warning("notify: webhook %s answered HTTP %d", shown, resp.status)
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("notify: webhook %s failed: %s", shown, exc.__class__.__name__)
            return
        self.sent += 1

    async def _apprise(self, event: Event) -> None:
        try:
            import apprise  # type: ignore[import-not-found]
        except ImportError:
            log.error("notify: apprise_urls are set but Apprise is not installed; install it "
                      "with: ~/failwatch-moonraker-env/bin/pip install apprise")
            return

        def send_blocking() -> bool:
            app = apprise.Apprise()
            for url in self.apprise_urls:
                app.add(url)
            attach = event.image_path if event.image_path and Path(event.image_path).exists() \
                else None
            return bool(app.notify(title=f"failwatch: {event.level} on {event.printer}",
                                   body=event.message, attach=attach))

        try:
            ok = await asyncio.wait_for(asyncio.to_thread(send_blocking),
                                        self._timeout.total or 10.0)
        except Exception as exc:  # Apprise plugins raise anything
            log.warning("notify: apprise failed: %s", exc.__class__.__name__)
            return
        if ok:
            self.sent += 1
        else:
            log.warning("notify: apprise could not deliver to every URL")


def _redact_url(url: str) -> str:
    """Webhook URLs often carry a token in the path or query: show only the host."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/..."
