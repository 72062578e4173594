"""report.html in a real browser: headless Chromium, driven through the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe`` (commands on fd 3, replies on fd 4, JSON
messages separated by NUL bytes), so no WebDriver and no websocket library is needed. The test
clicks the epoch slider like a user, checks that another portrait is shown (a decoded image of
another epoch), and that the page logged no error and asked for nothing outside the file.

Skips, with the reason, where the ``chromium`` executable is absent (``.ci/run`` installs
Debian's chromium package).
"""
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="the `chromium` executable is not on PATH; "
                       "install Debian's chromium package (`apt-get install chromium`, as "
                       ".ci/run does) to run the report's browser test"),
]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--remote-debugging-pipe", "--window-size=1200,1600"]


_TRAMPOLINE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
               "os.execv(sys.argv[3], sys.argv[3:])")


class DevTools:
    """A minimal Chrome DevTools Protocol client over the pipe transport."""

    def __init__(self, user_data_dir: str, timeout: float = 30.0):
        self.timeout = timeout
        to_child_r, self._write_fd = os.pipe()
        self._read_fd, from_child_w = os.pipe()

        # the browser reads commands on fd 3 and writes replies on fd 4: a tiny Python
        # trampoline moves the pipe ends there, then becomes chromium
        self.process = subprocess.Popen(
            [sys.executable, "-c", _TRAMPOLINE, str(to_child_r), str(from_child_w), CHROMIUM,
             *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe; stderr: "
                                   + self.process.stderr.read().decode(errors="replace")[-2000:])
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, params: dict = None, session: str = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def pump(self, seconds: float) -> None:
        """Collect events for a while (console messages arrive asynchronously)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.process.stderr:
            self.process.stderr.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A real report of a five-epoch series of the tanh map (a saddle-node inside)."""
    from analysis import analyze_series
    from analysis.report import write_report
    from fixedpoints import systems

    series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.40, 0.45, 0.50, 0.55,
                                                                    0.60])]
    analysis = analyze_series(series, n_initial=48)
    out = tmp_path_factory.mktemp("browser_report")
    return write_report(analysis, out, models=dict(series))


def _evaluate(tools, session, expression):
    result = tools.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, session)
    if "exceptionDetails" in result:
        raise AssertionError(f"page script failed: {result['exceptionDetails']}")
    return result["result"].get("value")


SHOWN = """(() => {
  const shown = [...document.querySelectorAll('#frames img')].filter(i => !i.hidden);
  return shown.map(i => ({epoch: i.dataset.epoch, width: i.naturalWidth,
                          visible: i.getBoundingClientRect().height > 0,
                          src: i.src.slice(0, 22) + i.src.length + i.src.slice(-40)}));
})()"""


def open_page(tools, path, domains=("Runtime", "Page", "Network")) -> str:
    """Open ``path`` in a new tab of ``tools``' Chromium, wait until it has loaded, and return
    the tab's DevTools session id (with ``domains`` enabled)."""
    target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = tools.send("Target.attachToTarget",
                         {"targetId": target, "flatten": True})["sessionId"]
    for domain in domains:
        tools.send(f"{domain}.enable", {}, session)
    tools.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session)
    tools.wait_for("Page.loadEventFired")
    return session


def test_slider_changes_the_portrait_without_console_errors(report):
    with tempfile.TemporaryDirectory(prefix="ghostscope-chromium-") as profile:
        tools = DevTools(profile)
        try:
            session = open_page(tools, report, ("Runtime", "Log", "Page", "Network"))

            frames = _evaluate(tools, session, "document.querySelectorAll('#frames img').length")
            assert frames == 5
            before = _evaluate(tools, session, SHOWN)
            assert len(before) == 1 and before[0]["epoch"] == "0"
            assert before[0]["width"] > 0 and before[0]["visible"]  # a decoded, visible image

            # click the slider's track near its right end, like a user would
            box = _evaluate(tools, session, """(() => {
                const r = document.getElementById('epoch-slider').getBoundingClientRect();
                r.target = null; return {x: r.left, y: r.top, w: r.width, h: r.height}; })()""")
            assert box["w"] > 50
            x, y = box["x"] + 0.9 * box["w"], box["y"] + box["h"] / 2
            for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                tools.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                        "button": "left", "clickCount": 1},
                           session)
            after = _evaluate(tools, session, SHOWN)
            assert len(after) == 1
            assert after[0]["epoch"] in ("3", "4")  # near the right end of epochs 0..4
            assert after[0]["src"] != before[0]["src"]
            assert after[0]["width"] > 0 and after[0]["visible"]
            label = _evaluate(tools, session, "document.getElementById('epoch-label').textContent")
            assert label.startswith(f"epoch {after[0]['epoch']}")

            # the keyboard moves it too (one step left)
            _evaluate(tools, session, "document.getElementById('epoch-slider').focus()")
            for kind in ("rawKeyDown", "keyUp"):
                tools.send("Input.dispatchKeyEvent", {"type": kind, "key": "ArrowLeft",
                                                      "code": "ArrowLeft",
                                                      "windowsVirtualKeyCode": 37}, session)
            left = _evaluate(tools, session, SHOWN)
            assert int(left[0]["epoch"]) == int(after[0]["epoch"]) - 1

            tools.pump(0.5)
            problems = []
            requests = []
            for event in tools.events:
                method, params = event.get("method"), event.get("params", {})
                if method == "Runtime.exceptionThrown":
                    problems.append(params["exceptionDetails"].get("text"))
                elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                        "error", "assert", "warning"):
                    problems.append(params)
                elif method == "Log.entryAdded" and params["entry"]["level"] in ("error",
                                                                                 "warning"):
                    problems.append(params["entry"])
                elif method == "Network.requestWillBeSent":
                    requests.append(params["request"]["url"])
            assert problems == []
            external = [u for u in requests if not u.startswith(("file:", "data:"))]
            assert external == []  # self-contained: nothing fetched from elsewhere
        finally:
            tools.close()
