"""The atlas website in a real headless Chromium, from file:// and from python -m http.server.

The browser is driven through the Chrome DevTools Protocol over ``--remote-debugging-pipe``
(NUL-separated JSON on file descriptors 3 and 4): no websocket or WebDriver package needed.
``scripts/install_browser.sh`` installs Chromium when it is missing; the test skips only when
that fails. Screenshots are kept in ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import base64
import fcntl
import itertools
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from maco_tf.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CLASSES = "espresso,goldfish,tabby,jack-o'-lantern"
SLUGS = ("0001_goldfish", "0281_tabby_cat", "0607_carved_pumpkin", "0967_espresso")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
]

WAIT_FOR_IMAGES = """
(async () => {
  window.scrollTo(0, document.body.scrollHeight);
  const images = Array.from(document.images);
  const settle = (img) => img.complete ? null : new Promise((done) => {
    img.addEventListener("load", done); img.addEventListener("error", done);
  });
  const timeout = new Promise((done) => setTimeout(done, 15000));
  await Promise.race([Promise.all(images.map(settle)), timeout]);
  window.scrollTo(0, 0);
  return images.map((img) => ({src: img.currentSrc || img.src, width: img.naturalWidth,
                                alt: img.getAttribute("alt")}));
})()
"""

GRID_STATE = """
(() => {
  const cards = Array.from(document.querySelectorAll("#grid > li"));
  return {
    shown: cards.filter((li) => !li.hidden && li.offsetParent !== null)
                .map((li) => li.querySelector("a").getAttribute("href")),
    count: document.getElementById("count").textContent,
    empty: !document.getElementById("empty").hidden,
  };
})()
"""


# ------------------------------------------------------------------------------ browser


def _find_browser() -> str:
    """Chromium's path, installing it with scripts/install_browser.sh if needed, else skip."""
    script = ROOT / "scripts" / "install_browser.sh"
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=900, check=False
    )
    path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not path:
        pytest.skip(
            "no Chromium and scripts/install_browser.sh could not install one: "
            + (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        )
    return path


def _above_4(fd: int) -> int:
    """The same pipe end on a descriptor >= 10 (so moving it to 3 or 4 cannot clobber it)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class DevTools:
    """A headless Chromium and a minimal CDP client over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        to_browser_r, from_browser_w = _above_4(to_browser_r), _above_4(from_browser_w)
        moves = f"3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-"
        command = [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" {moves}', "chromium", *command],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._inbox: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                self._inbox.put(None)
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._inbox.put(json.loads(message))

    def _next(self, deadline: float) -> dict:
        try:
            message = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("no answer from Chromium") from None
        if message is None:
            raise RuntimeError(f"Chromium exited (code {self.process.poll()})")
        return message

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params):
        """Send a command and return its result; events received meanwhile are kept."""
        ident = next(self._ids)
        message = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._next(deadline)
            if answer.get("id") == ident:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict:
        """The first event ``method`` of ``session`` not consumed yet."""
        deadline = time.monotonic() + timeout
        while True:
            for position, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self.events.pop(position)
            self.events.append(self._next(deadline))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        self._log.close()


class Page:
    """One browser tab: navigate, evaluate, type, screenshot, and its console errors."""

    def __init__(self, browser: DevTools) -> None:
        self.browser = browser
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = browser.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=1100,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params):
        return self.browser.call(method, self.session, **params)

    def goto(self, url: str) -> None:
        """Navigate and wait until the new document has loaded."""
        self.browser.events = [
            event
            for event in self.browser.events
            if not (
                event.get("method") == "Page.loadEventFired"
                and event.get("sessionId") == self.session
            )
        ]
        self.call("Page.navigate", url=url)
        while True:
            self.browser.wait_event("Page.loadEventFired", self.session)
            state = self.evaluate("[document.readyState, location.href]")
            if state[0] == "complete" and state[1] != "about:blank":
                return

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def type(self, text: str) -> None:
        """Focus the search box, clear it, and type ``text`` as a user would."""
        self.evaluate("document.getElementById('q').focus(); document.getElementById('q').select()")
        self.call("Input.dispatchKeyEvent", type="rawKeyDown", key="Backspace", code="Backspace",
                  windowsVirtualKeyCode=8)  # fmt: skip
        self.call("Input.dispatchKeyEvent", type="keyUp", key="Backspace", code="Backspace",
                  windowsVirtualKeyCode=8)  # fmt: skip
        for char in text:
            self.call("Input.dispatchKeyEvent", type="keyDown", text=char, key=char)
            self.call("Input.dispatchKeyEvent", type="keyUp", key=char)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen by this tab."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:300])
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in (
                "error",
                "assert",
            ):
                found.append(json.dumps(params.get("args", []))[:300])
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                found.append(f"{entry.get('text')} {entry.get('url', '')}")
        return found


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def browser_binary() -> str:
    return _find_browser()


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    """A 4-class atlas of the offline model; espresso and tabby cat with examples + concepts."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("atlas")
    examples = root / "examples_in"
    for folder, photo in (("espresso", data.coffee()), ("Tabby_Cat", data.chelsea())):
        (examples / folder).mkdir(parents=True)
        image = Image.fromarray(photo)
        image.save(examples / folder / "photo.jpg")
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(examples / folder / "mirror.png")
    out = root / "atlas"
    args = ["atlas", "--classes", CLASSES, "--steps", "2", "--crops", "1", "--size", "224"]
    extra = ["--examples", str(examples), "--concepts", "2", "--out", str(out), "--quiet"]
    assert main([*args, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def server(atlas):
    """``python -m http.server`` on 127.0.0.1, a free port chosen by the OS; yields its URL."""
    log = atlas.parent / "http.log"
    with open(log, "wb") as errors:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
             "--directory", str(atlas)],
            stdout=subprocess.PIPE,
            stderr=errors,
        )  # fmt: skip
        try:
            line = process.stdout.readline().decode()
            port = re.search(r"port (\d+)", line)
            assert port, f"http.server did not start: {line!r}"
            yield f"http://127.0.0.1:{port.group(1)}/", log
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(browser_binary, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    devtools = DevTools(browser_binary, profile, profile.parent / "chromium.log")
    try:
        devtools.call("Browser.getVersion", timeout=60)
    except (RuntimeError, TimeoutError) as exc:
        devtools.close()
        log = (profile.parent / "chromium.log").read_text(errors="replace")[-2000:]
        pytest.fail(f"Chromium did not start ({exc}); its output:\n{log}")
    yield devtools
    devtools.close()


# ------------------------------------------------------------------------------ checks


def _check_images(page: Page, url: str, minimum: int) -> list[dict]:
    images = page.evaluate(WAIT_FOR_IMAGES)
    assert len(images) >= minimum, f"{url}: {len(images)} images, expected >= {minimum}"
    broken = [image["src"] for image in images if image["width"] <= 0]
    assert not broken, f"{url}: images that did not load: {broken}"
    assert all(image["alt"] for image in images), f"{url}: image without alt text"
    return images


def _check_search(page: Page, screenshot: Path) -> None:
    every = page.evaluate(GRID_STATE)
    assert len(every["shown"]) == len(SLUGS)
    assert every["count"] == f"{len(SLUGS)} of {len(SLUGS)} classes shown"
    for query, expected in (
        ("gold", ["0001_goldfish"]),
        ("Carassius", ["0001_goldfish"]),  # a synonym
        ("n07920052", ["0967_espresso"]),  # a WordNet id
        ("jack o lantern", ["0607_carved_pumpkin"]),  # separators and apostrophe ignored
        ("281", ["0281_tabby_cat"]),  # an index
        ("zebra", []),
    ):
        page.type(query)
        state = page.evaluate(GRID_STATE)
        assert state["shown"] == [f"classes/{slug}.html" for slug in expected], query
        assert state["count"] == f"{len(expected)} of {len(SLUGS)} classes shown", query
        assert state["empty"] == (not expected), query
        if query == "gold":
            page.screenshot(screenshot)
    page.type("")
    assert len(page.evaluate(GRID_STATE)["shown"]) == len(SLUGS)


def _visit_site(page: Page, base: str, label: str) -> dict[str, Path]:
    """Index (images, search), then every class page (images, pager); screenshots."""
    index = base + "index.html"
    page.goto(index)
    _check_images(page, index, minimum=len(SLUGS))
    shots = {"index": page.screenshot(ARTIFACTS / f"atlas_index_{label}.png")}
    _check_search(page, ARTIFACTS / f"atlas_search_{label}.png")
    links = page.evaluate("Array.from(document.querySelectorAll('#grid a')).map((a) => a.href)")
    assert [link.rsplit("/", 1)[-1] for link in links] == [f"{s}.html" for s in SLUGS]
    for link in links:
        page.goto(link)
        with_extras = "espresso" in link or "tabby" in link
        _check_images(page, link, minimum=3 + (4 if with_extras else 0))
        pager = page.evaluate(
            "Array.from(document.querySelectorAll('nav.pager a')).map((a) => a.href)"
        )
        assert pager[0] == index
        assert all(href in links for href in pager[1:]), pager
        rows = page.evaluate("document.querySelectorAll('table.top5 tbody tr').length")
        assert rows == 5
        if "espresso" in link:
            shots["class"] = page.screenshot(ARTIFACTS / f"atlas_class_{label}.png")
    assert not page.errors(), f"console errors ({label}): {page.errors()}"
    return shots


def test_atlas_from_file_url(browser, atlas):
    page = Page(browser)
    shots = _visit_site(page, atlas.as_uri() + "/", "file")
    print(f"\nscreenshots: {shots['index']} {shots['class']}")


def test_atlas_from_http_server(browser, server):
    url, log = server
    page = Page(browser)
    shots = _visit_site(page, url, "http")
    print(f"\nscreenshots: {shots['index']} {shots['class']}")
    requests = log.read_text(errors="replace")
    assert '"GET /index.html HTTP/1.1" 200' in requests
    assert not re.search(r'" (4|5)\d\d ', requests), requests
