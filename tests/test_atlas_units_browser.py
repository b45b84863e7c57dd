"""The unit atlas website in a real headless Chromium, from file:// and from python -m http.server.

The browser, its DevTools client and the http.server fixture are test_atlas_browser.py's;
``server`` serves this module's ``atlas`` (fixtures resolve by name in the requesting module).
Screenshots are kept in ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from maco_tf.cli.main import main
from tests.test_atlas_browser import (  # noqa: F401 - fixtures used by name
    ARTIFACTS,
    GRID_STATE,
    Page,
    _check_images,
    browser,
    browser_binary,
    server,
)

LAYER = "block4c_add"
SLUGS = tuple(f"{LAYER}_ch{i:04d}" for i in range(3))
PATCHES = 4
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "colorwheel")


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    """Channels 0-2 of a layer of the offline model, with 2 copies, patches and trust."""
    from PIL import Image, ImageOps
    from skimage import data

    root = tmp_path_factory.mktemp("unit_atlas")
    photos = root / "photos"
    photos.mkdir()
    for name in PHOTOS:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        image.save(photos / f"{name}.jpg")
        ImageOps.mirror(image).save(photos / f"{name}_mirror.png")
    out = root / "atlas"
    args = ["atlas", "--layer", LAYER, "--channels", "0-2", "--steps", "2", "--crops", "1"]
    extra = ["--size", "224", "--copies", "2", "--examples", str(photos), "--patches", str(PATCHES)]
    assert main([*args, *extra, "--out", str(out), "--quiet"]) == 0
    return out


def _check_search(page: Page) -> None:
    count = len(SLUGS)
    assert page.evaluate(GRID_STATE)["count"] == f"{count} of {count} units shown"
    for query, expected in (
        ("channel 1", [SLUGS[1]]),
        ("block4c", list(SLUGS)),
        ("zebra", []),
    ):
        page.type(query)
        state = page.evaluate(GRID_STATE)
        assert state["shown"] == [f"units/{slug}.html" for slug in expected], query
        assert state["count"] == f"{len(expected)} of {count} units shown", query
        assert state["empty"] == (not expected), query
    page.type("")


def _visit_site(page: Page, base: str, label: str) -> dict[str, Path]:
    """Index (images, search), then every unit page (images, pager, trust); screenshots."""
    index = base + "index.html"
    page.goto(index)
    _check_images(page, index, minimum=len(SLUGS))
    shots = {"index": page.screenshot(ARTIFACTS / f"unit_atlas_index_{label}.png")}
    _check_search(page)
    links = page.evaluate("Array.from(document.querySelectorAll('#grid a')).map((a) => a.href)")
    assert [link.rsplit("/", 1)[-1] for link in links] == [f"{s}.html" for s in SLUGS]
    for link in links:
        page.goto(link)
        images = _check_images(page, link, minimum=3 + 2 + PATCHES)
        assert sum("/patches/" in image["src"] for image in images) == PATCHES
        pager = page.evaluate(
            "Array.from(document.querySelectorAll('nav.pager a')).map((a) => a.href)"
        )
        assert pager[0] == index and all(href in links for href in pager[1:]), pager
        score = page.evaluate("document.querySelector('.trust-score').textContent")
        assert re.match(r"Trust score (-?\d+\.\d\d|n/a):", score), score
        rows = page.evaluate("document.querySelectorAll('table.trust tbody tr').length")
        assert rows >= 2
        if link.endswith(f"{SLUGS[0]}.html"):
            shots["unit"] = page.screenshot(ARTIFACTS / f"unit_atlas_unit_{label}.png")
    assert not page.errors(), f"console errors ({label}): {page.errors()}"
    return shots


def test_unit_atlas_from_file_url(browser, atlas):  # noqa: F811
    shots = _visit_site(Page(browser), atlas.as_uri() + "/", "file")
    print(f"\nscreenshots: {shots['index']} {shots['unit']}")


def test_unit_atlas_from_http_server(browser, server):  # noqa: F811
    url, log = server
    shots = _visit_site(Page(browser), url, "http")
    print(f"\nscreenshots: {shots['index']} {shots['unit']}")
    requests = log.read_text(errors="replace")
    assert '"GET /index.html HTTP/1.1" 200' in requests
    assert not re.search(r'" (4|5)\d\d ', requests), requests
