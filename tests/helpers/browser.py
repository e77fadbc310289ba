"""A page as headless Chromium renders it, for the browser tests (marker ``browser``).

Chromium is the Debian package's ``/usr/bin/chromium`` or ``$CHROMIUM``
(:func:`tools.screenshot.chromium`); a test skips cleanly where there is none.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.screenshot import chromium

from helpers import SAFETY_NET_S

__all__ = ["chromium_or_skip", "dump_dom"]


def chromium_or_skip() -> str:
    """The Chromium binary, or skip the test."""
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium (apt-get install chromium, or set $CHROMIUM)")
    return binary


def dump_dom(url: str, profile: Path, *, size: str = "1920,1080") -> str:
    """The DOM of ``url`` once its scripts ran (30 s of the page's virtual time), in a fresh ``profile``."""
    return subprocess.run(
        [
            chromium_or_skip(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=30000",
            f"--window-size={size}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=SAFETY_NET_S,
    ).stdout
