"""Driving headless Chromium through the DevTools protocol: open a page, run script in it, wait.

``--dump-dom`` shows a page once; a console test has to type, click and read what changed, so it
talks to Chromium's DevTools websocket (websockets' sync client, already installed with uvicorn).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.support.browser import require_chromium
from tests.support.processes import free_port


class Page:
    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._next_id = 0

    def _send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def navigate(self, url: str) -> None:
        self._send("Page.navigate", url=url)

    def evaluate(self, script: str) -> Any:
        """The value of a script (a promise is awaited); a script that throws fails the test."""
        result = self._send("Runtime.evaluate", expression=script, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout_s: float = 20.0) -> Any:
        """Poll a script until it is truthy (a script that throws counts as not yet); returns its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(condition)
            except AssertionError:  # the page is still loading (no body yet, say)
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                said = self.evaluate("document.getElementById('console-status')?.textContent")
                raise AssertionError(f"timed out waiting for {condition!r}; the page says: {said!r}")
            time.sleep(0.1)


@contextmanager
def browser_page() -> Iterator[Page]:
    port = free_port()
    # Chromium's helper processes may still write the profile as the browser exits
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen([require_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                    f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                                    "--window-size=1280,1400", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                    pages = [t for t in targets if t.get("type") == "page"]
                    if pages:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("chromium's DevTools endpoint did not come up")
                time.sleep(0.2)
            with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as socket:
                page = Page(socket)
                page._send("Page.enable")
                page._send("Runtime.enable")
                yield page
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
