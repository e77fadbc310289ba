"""A screenshot of a page of the MLflow UI in headless Chromium, after clicking what you name.

The docs' screenshots of the UI (``docs/images/``) are made with it, so they can be made again::

    .venv/bin/python tools/screenshot.py "http://127.0.0.1:5000/#/experiments/1/runs/<run_id>" \\
        docs/images/parent-run.png --wait-for "Pareto front" --click "Expand description" --click Close \\
        --height 1040 --colors 256

Chromium (``/usr/bin/chromium`` from the Debian package, or ``$CHROMIUM``) is driven over its
DevTools protocol with the standard library alone: the page is loaded, the tool waits until its
text holds ``--wait-for``, clicks each ``--click`` in turn (an element whose ``aria-label`` or
whole text is that string; one that is not there is skipped, with a note), waits for the page to
settle, and saves the viewport (``--width`` x ``--height`` CSS pixels) as a PNG (``--colors N``:
with a palette of N colours, a few times smaller). Exit 2 with one
line when Chromium is missing or the page never shows ``--wait-for``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["chromium", "main", "reduce_colors", "screenshot"]

_CLICK = """(label) => {
  const all = [...document.querySelectorAll('[aria-label], button, a, span, div[role="button"]')];
  const hit = all.find(e => e.getAttribute('aria-label') === label)
           || all.find(e => e.textContent.trim() === label);
  if (!hit) return false;
  hit.click();
  return true;
}"""


def chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM``, ``/usr/bin/chromium`` or ``chromium`` on the PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


class _Socket:
    """A minimal WebSocket client (RFC 6455 text frames), enough for the DevTools protocol."""

    def __init__(self, url: str) -> None:
        host, port, path = re.match(r"ws://([^:/]+):(\d+)(/.*)", url).groups()  # type: ignore[union-attr]
        self.sock = socket.create_connection((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += self.sock.recv(1)
        if b" 101 " not in answer.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"DevTools refused the WebSocket: {answer[:80]!r}")
        self.next_id = 0

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
        return data

    def send(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        head = bytes([0x81])
        if len(payload) < 126:
            head += bytes([0x80 | len(payload)])
        elif len(payload) < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def receive(self) -> dict[str, Any]:
        data = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            data += self._read(length)
            if first & 0x80:  # the final fragment
                return json.loads(data)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")


def _wait(condition: Any, deadline_s: float) -> bool:
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        if condition():
            return True
        time.sleep(0.5)
    return False


def screenshot(
    url: str,
    out: Path,
    *,
    wait_for: str = "",
    clicks: tuple[str, ...] = (),
    width: int = 1440,
    height: int = 1800,
    deadline_s: float = 120.0,
) -> list[str]:
    """Save a screenshot of ``url`` to ``out`` (module docstring); returns notes (clicks not found)."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium (apt-get install chromium, or set $CHROMIUM)")
    notes = []
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port = None
            for line in proc.stderr:  # type: ignore[union-attr]
                found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                if found:
                    port = found.group(1)
                    break
            if port is None:
                raise ConnectionError("Chromium did not open its DevTools port")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
                page = next(t for t in json.load(answer) if t["type"] == "page")
            ws = _Socket(page["webSocketDebuggerUrl"])
            ws.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            ws.call("Page.enable")
            ws.call("Page.navigate", url=url)
            shown = f"document.body && document.body.innerText.includes({json.dumps(wait_for)})"
            if not _wait(lambda: ws.evaluate(shown), deadline_s):
                raise TimeoutError(f"--wait-for: {wait_for!r} never appeared on {url}")
            for label in clicks:
                if not ws.evaluate(f"({_CLICK})({json.dumps(label)})"):
                    notes.append(f"--click: nothing labelled {label!r} on the page; skipped")
                time.sleep(1.0)  # the page redraws after a click
            time.sleep(2.0)  # images and fonts
            png = ws.call("Page.captureScreenshot", format="png")["data"]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(base64.b64decode(png))
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
    return notes


def reduce_colors(path: Path, colors: int) -> None:
    """Rewrite the PNG ``path`` with a palette of ``colors`` colours (a few times smaller for a docs page)."""
    # start-up: Pillow (matplotlib's dependency) loads only when asked to shrink a picture
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--wait-for", default="", help="text the page must show before the screenshot")
    parser.add_argument("--click", action="append", default=[], help="aria-label or text of an element to click")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1800)
    parser.add_argument("--colors", type=int, default=0, help="reduce the PNG to N colours (Pillow), 0: keep")
    args = parser.parse_args(argv)
    try:
        notes = screenshot(
            args.url, args.out, wait_for=args.wait_for, clicks=tuple(args.click), width=args.width, height=args.height
        )
    except (FileNotFoundError, TimeoutError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(note, file=sys.stderr)
    if args.colors:
        reduce_colors(args.out, args.colors)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
