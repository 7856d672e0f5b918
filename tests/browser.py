"""Debian's Chromium, launched through Playwright the way this project's tests and docs do.

No browser is downloaded (``playwright install`` is never run): ``apt-get install chromium``
provides ``/usr/bin/chromium``, and these flags keep it offline and quiet in a container.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
