"""The documentation site builds with ``mkdocs build --strict`` (a broken
link, a missing anchor, a missing snippet file or a page left out of the nav
fails it), and the built site, served by pounce itself, renders in headless
Chromium: the home page and a configuration page show their headings, the
theme's header and navigation, and are screenshotted."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import mimetypes
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.browser import DevTools
from tests.helpers import ROOT, copy_of_tree

pytest.importorskip("mkdocs")
pytest.importorskip("material")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.mark.slow
def test_strict_build_covers_every_page(site: Path) -> None:
    """Every Markdown page under docs/ became an HTML page of the site."""
    for page in (ROOT / "docs").rglob("*.md"):
        rel = page.relative_to(ROOT / "docs").with_suffix("")
        target = site / ("index.html" if rel.name == "index" and rel.parent == Path(".") else
                         rel.parent / "index.html" if rel.name == "index" else rel / "index.html")
        assert target.exists(), f"{page.relative_to(ROOT)} was not built ({target})"


@pytest.mark.slow
def test_strict_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    """The same build, on a copy of the repository with one broken link added,
    fails, and names that link as its only problem."""
    copy = tmp_path / "repo"
    copy_of_tree(copy)
    page = copy / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "out")], cwd=copy, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode != 0
    warnings = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("WARNING")]
    assert len(warnings) == 1 and "no-such-page.md" in warnings[0], warnings


def test_deployment_pages_show_the_tested_files(site: Path) -> None:
    """The snippets put the very deploy/ files, whole, in the pages."""
    for page, source in [("deployment/nginx", "deploy/nginx/pounce.conf"),
                         ("deployment/systemd", "deploy/systemd/pounce.service"),
                         ("deployment/systemd", "deploy/systemd/pounce.socket"),
                         ("deployment/docker", "deploy/docker/Dockerfile"),
                         ("deployment/kubernetes", "deploy/kubernetes/pounce.yaml")]:
        text = html.unescape(re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text()))
        assert source in text
        for line in (ROOT / source).read_text().splitlines():
            assert line.strip() in text, (page, line)


def static_app(root: Path) -> Any:
    """The built site as a tiny ASGI app (GET only, index.html for folders)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = (root / scope["path"].lstrip("/")).resolve()
        if path.is_dir():
            path = path / "index.html"
        if root not in path.parents or not path.is_file():
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind.encode())]})
        await send({"type": "http.response.body", "body": path.read_bytes()})

    return app


@pytest.fixture
def served_site(site: Path, serve: Any) -> Iterator[str]:
    yield serve(static_app(site.resolve()), lifespan="off").url


PAGES = [
    ("", "pounce", ["Where to go", "What is in the box"]),
    ("configuration/", "Configuration", ["Where options come from", "Sections"]),
    ("configuration/server/", "[server]", ["timeout_graceful_shutdown", "forwarded_allow_ips"]),
]


@pytest.mark.slow
def test_pages_render_in_chromium(served_site: str, chromium: int, tmp_path: Path) -> None:  # noqa: F811
    with httpx.Client(trust_env=False, timeout=10) as http:
        targets = http.get(f"http://127.0.0.1:{chromium}/json/list").json()
        assert http.get(served_site + "/configuration/server/").status_code == 200
    page = next(t for t in targets if t.get("type") == "page")

    async def visit(tools: DevTools, path: str) -> dict[str, Any]:
        await tools.call("Page.navigate", url=f"{served_site}/{path}")
        await tools.wait_for(f"location.pathname === {json.dumps('/' + path)} && document.readyState === 'complete'"
                             " && !!document.querySelector('.md-content h1')")
        facts = await tools.evaluate("""JSON.stringify({
            h1: document.querySelector('.md-content h1').textContent.replace('¶', '').trim(),
            headings: Array.from(document.querySelectorAll('.md-content h2')).map(h => h.textContent.replace('¶', '').trim()),
            title: document.title,
            header: !!document.querySelector('header.md-header'),
            navLinks: document.querySelectorAll('nav.md-nav--primary a').length,
            contentWidth: document.querySelector('.md-content').getBoundingClientRect().width,
            headerColor: getComputedStyle(document.querySelector('header.md-header')).backgroundColor,
        })""")
        shot = await tools.call("Page.captureScreenshot", format="png")
        return {**json.loads(facts), "png": base64.b64decode(shot["data"])}

    async def drive() -> list[dict[str, Any]]:
        async with connect(page["webSocketDebuggerUrl"], proxy=None, max_size=None) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                             deviceScaleFactor=1, mobile=False)
            return [await visit(tools, path) for path, _, _ in PAGES]

    results = asyncio.run(asyncio.wait_for(drive(), 90))
    for (path, h1, headings), facts in zip(PAGES, results, strict=True):
        name = path.strip("/").replace("/", "-") or "home"
        (tmp_path / f"{name}.png").write_bytes(facts["png"])
        assert facts["png"].startswith(b"\x89PNG") and len(facts["png"]) > 10_000
        assert facts["h1"] == h1
        assert all(h in facts["headings"] for h in headings), facts["headings"]
        assert facts["title"].endswith("pounce")
        # The theme is there: its header (coloured, not transparent), the
        # navigation with every page, and content laid out beside it.
        assert facts["header"] and facts["headerColor"] not in ("rgba(0, 0, 0, 0)", "transparent")
        assert facts["navLinks"] >= 20
        assert 400 < facts["contentWidth"] < 1280
