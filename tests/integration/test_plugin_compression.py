"""The compression plugin against a real server: httpx and curl decoding
what pounce sends, the demo's Server-Sent Events arriving one by one through
a compressed stream, and the skips the plugin promises."""

from __future__ import annotations

import gzip
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
import zstandard
from files_probes import Probe

from pounce.demo import app as demo_app
from pounce.plugins import compression as compression_plugin
from pounce.plugins.compression import codecs  # the module (codecs.py)
from pounce.testing import ServerThread, run_pounce
from tests.helpers import need_command

JSON = json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(400)]).encode()


def responder(status: int = 200, body: bytes = JSON, headers: tuple[tuple[bytes, bytes], ...] = (),
              content_type: bytes | None = b"application/json") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        fields = [(b"content-length", b"%d" % len(body)), *headers]
        if content_type is not None:
            fields.append((b"content-type", content_type))
        await send({"type": "http.response.start", "status": status, "headers": fields})
        await send({"type": "http.response.body", "body": body})
    return app


async def streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """40 messages of JSON lines, no Content-Length."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson"), (b"etag", b'"v1"')]})
    for i in range(40):
        await send({"type": "http.response.body", "body": b'{"line": %d, "pad": "%s"}\n' % (i, b"x" * 200),
                    "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def expected_stream() -> bytes:
    return b"".join(b'{"line": %d, "pad": "%s"}\n' % (i, b"x" * 200) for i in range(40))


def serve(app: Any, **overrides: Any) -> ServerThread:
    overrides.setdefault("compression_enabled", True)
    return ServerThread(app, **overrides)


def raw(client: httpx.Client, path: str, accept: str, method: str = "GET",
        **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as it came over the wire (not decoded)."""
    with client.stream(method, path, headers={"accept-encoding": accept, **headers}) as response:
        return response, b"".join(response.iter_raw())


DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


# -- each coding, decoded by real clients ---------------------------------------------


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_each_coding_with_httpx(coding: str) -> None:
    with serve(responder()) as server, httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", coding)
        decoded = client.get("/", headers={"accept-encoding": coding})
    assert response.headers["content-encoding"] == coding
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(wire) < len(JSON) / 4
    assert DECODE[coding](wire) == JSON
    assert decoded.content == JSON  # httpx's own decoder agrees


def test_curl_compressed() -> None:
    curl = need_command("curl")
    with serve(demo_app) as server:
        result = subprocess.run([curl, "-sS", "--compressed", "-D", "-", server.url + "/"],
                                capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert b"content-encoding: " in head.lower()  # curl's choice among its deflate, gzip, br, zstd
    assert b"<h1>pounce is running</h1>" in body  # and it decoded it


def test_server_preference_and_q_values() -> None:
    with serve(responder(), compression_algorithms=["gzip", "br"]) as server, \
            httpx.Client(base_url=server.url) as client:
        def coding(accept: str) -> str | None:
            return raw(client, "/", accept)[0].headers.get("content-encoding")

        assert coding("br, gzip") == "gzip"  # equal q: the server's order
        assert coding("gzip;q=0.5, br") == "br"  # higher q wins
        assert coding("zstd") is None  # not among the configured ones
        assert coding("*") == "gzip"
        assert coding("gzip;q=0, *;q=0.2") == "br"
        assert coding("identity") is None
        assert coding("gzip;q=0.3, identity;q=1") is None  # the client would rather not
        assert coding("X-GZIP") == "gzip"
        assert coding("gzip;q=nonsense, br;q=0.1") == "br"


def test_no_accept_encoding_is_untouched() -> None:
    with serve(responder()) as server, httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", "")
    assert wire == JSON and "content-encoding" not in response.headers and "vary" not in response.headers


# -- what is never compressed -----------------------------------------------------------


@pytest.mark.parametrize(("label", "app", "method"), [
    ("below min_size", responder(body=b'{"small": true}'), "GET"),
    ("an image", responder(content_type=b"image/png"), "GET"),
    ("an archive", responder(content_type=b"application/zip"), "GET"),
    ("a video", responder(content_type=b"video/mp4"), "GET"),
    ("no content type", responder(content_type=None), "GET"),
    ("already encoded", responder(headers=((b"content-encoding", b"br"),)), "GET"),
    ("no-transform", responder(headers=((b"cache-control", b"public, No-Transform"),)), "GET"),
    ("a range", responder(status=206, headers=((b"content-range", b"bytes 0-9/100"),)), "GET"),
    ("a HEAD", responder(), "HEAD"),
])
def test_not_compressed(label: str, app: Any, method: str) -> None:
    with serve(app) as server, httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", "gzip, br, zstd", method=method)
    assert "content-encoding" not in response.headers or response.headers["content-encoding"] == "br", label
    assert "vary" not in response.headers, label
    if method == "GET":
        assert len(wire) == int(response.headers["content-length"]), label


def test_204_and_304_pass_through() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            status = 304 if scope["path"] == "/304" else 204
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/html"), (b"etag", b'"x"')]})
            await send({"type": "http.response.body", "body": b""})

    with serve(app) as server, httpx.Client(base_url=server.url) as client:
        for path, status in (("/304", 304), ("/204", 204)):
            response = client.get(path, headers={"accept-encoding": "gzip"})
            assert response.status_code == status
            assert "content-encoding" not in response.headers and response.headers["etag"] == '"x"'


def test_incompressible_body_is_sent_as_it_is() -> None:
    import os

    noise = os.urandom(4000)
    with serve(responder(body=noise, content_type=b"application/json")) as server, \
            httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", "gzip")
    assert wire == noise and "content-encoding" not in response.headers


def test_content_types_option() -> None:
    with serve(responder(content_type=b"application/vnd.custom"),
               compression_content_types=["application/vnd.custom"]) as server, \
            httpx.Client(base_url=server.url) as client:
        assert raw(client, "/", "gzip")[0].headers["content-encoding"] == "gzip"
    with serve(responder(content_type=b"text/html"), compression_content_types=["application/json"]) as server, \
            httpx.Client(base_url=server.url) as client:
        assert "content-encoding" not in raw(client, "/", "gzip")[0].headers


def test_min_size_option() -> None:
    body = b"a" * 100
    with serve(responder(body=body, content_type=b"text/plain"), compression_min_size=50) as server, \
            httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", "gzip")
    assert response.headers["content-encoding"] == "gzip" and gzip.decompress(wire) == body


# -- headers it changes ---------------------------------------------------------------


def test_etag_turns_weak_and_vary_is_merged() -> None:
    app = responder(headers=((b"etag", b'"abc"'), (b"vary", b"Cookie")))
    with serve(app) as server, httpx.Client(base_url=server.url) as client:
        response, _ = raw(client, "/", "gzip")
    assert response.headers["etag"] == 'W/"abc"'
    assert response.headers["vary"] == "Cookie, Accept-Encoding"


def test_headers_given_as_any_iterable() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            fields = [(b"content-type", b"application/json"), (b"etag", b'"g"')]
            await send({"type": "http.response.start", "status": 200, "headers": (f for f in fields)})
            await send({"type": "http.response.body", "body": JSON})

    with serve(app) as server, httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", "gzip")
    assert response.headers["etag"] == 'W/"g"' and gzip.decompress(wire) == JSON


# -- streams ----------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_a_stream_is_compressed_as_it_streams(coding: str) -> None:
    with serve(streaming) as server, httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", coding)
        decoded = client.get("/", headers={"accept-encoding": coding})
    assert response.headers["content-encoding"] == coding
    assert "content-length" not in response.headers and response.headers["transfer-encoding"] == "chunked"
    assert response.headers["etag"] == 'W/"v1"'
    assert DECODE[coding](wire) == expected_stream()
    assert decoded.content == expected_stream()


@pytest.mark.slow
@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_server_sent_events_arrive_one_by_one(coding: str) -> None:
    """The demo's /events sends one event a second: each must be readable
    (decompressed) as soon as it is sent, not when the stream ends."""
    with serve(demo_app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", "/events", headers={"accept-encoding": coding}) as response:
            assert response.headers["content-encoding"] == coding
            arrivals = []
            text = ""
            for piece in response.iter_text():
                text += piece
                while "\n\n" in text:
                    event, text = text.split("\n\n", 1)
                    arrivals.append((time.monotonic(), event))
                if len(arrivals) == 3:
                    break
    assert [e.splitlines()[0] for _, e in arrivals] == ["id: 1", "id: 2", "id: 3"]
    # One second apart on the demo's clock: they were not held back together.
    assert arrivals[2][0] - arrivals[0][0] > 1.5


def test_curl_reads_events_as_they_come() -> None:
    curl = need_command("curl")
    with serve(demo_app) as server:
        proc = subprocess.Popen([curl, "-sSN", "--compressed", server.url + "/events"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # blocks until curl has decoded the first event
            assert first == b"id: 1\n"
            assert proc.stdout.readline().startswith(b"data: tick 1 at ")
        finally:
            proc.kill()
            proc.wait(10)


def test_pathsend_passes_through_uncompressed(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_bytes(b"<p>" + b"compressible " * 500 + b"</p>")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/html"), (b"content-length", b"%d" % page.stat().st_size)]})
            await send({"type": "http.response.pathsend", "path": str(page)})

    probe = Probe(pathsend=True)
    with serve(app, plugins=(probe,)) as server, httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", "gzip")
    assert wire == page.read_bytes() and "content-encoding" not in response.headers
    assert probe.pathsends() == [{"type": "http.response.pathsend", "path": str(page)}]


def test_static_files_are_not_compressed_on_the_fly(tmp_path: Path) -> None:
    (tmp_path / "site.css").write_bytes(b"body { margin: 0 }\n" * 100)
    with serve(responder(), static_mounts={"/s": str(tmp_path)}) as server, \
            httpx.Client(base_url=server.url) as client:
        css, wire = raw(client, "/s/site.css", "gzip")
        api, _ = raw(client, "/api", "gzip")
    assert "content-encoding" not in css.headers and wire == (tmp_path / "site.css").read_bytes()
    assert api.headers["content-encoding"] == "gzip"


# -- zstd from the standard library's API (3.14's compression.zstd) ----------------------


def test_the_stdlib_zstd_path(monkeypatch: pytest.MonkeyPatch) -> None:
    zstd = pytest.importorskip("backports.zstd")  # the same API as compression.zstd
    monkeypatch.setattr(codecs, "zstd_module", lambda: ("stdlib", zstd))
    with serve(streaming) as server, httpx.Client(base_url=server.url) as client:
        whole = client.get("/", headers={"accept-encoding": "zstd"})
    with serve(responder()) as server, httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", "zstd")
    assert whole.headers["content-encoding"] == "zstd" and whole.content == expected_stream()
    assert zstandard.ZstdDecompressor().decompress(wire) == JSON  # the frame carries its size


# -- configuration ----------------------------------------------------------------------


def test_disabled_installs_no_wrapper() -> None:
    from pounce.core.config import ServerConfig

    config = ServerConfig.load(env={}, discover=False)
    assert compression_plugin.pounce_wrap_app(config=config, app=demo_app) is None
    with ServerThread(responder()) as server, httpx.Client(base_url=server.url) as client:
        response, wire = raw(client, "/", "gzip, br, zstd")
    assert wire == JSON and "content-encoding" not in response.headers


def test_missing_codecs_are_skipped_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "brotli_module", lambda: None)
    with serve(responder()) as server, httpx.Client(base_url=server.url) as client:
        assert raw(client, "/", "br, gzip")[0].headers["content-encoding"] == "gzip"
    from pounce.core.config import ServerConfig

    config = ServerConfig.load(env={}, discover=False, compression_enabled=True)
    assert "not installed: br" in compression_plugin.pounce_banner(config=config)


@pytest.mark.parametrize(("args", "message"), [
    (["--compression-algorithms", "lzma"],
     "--compression-algorithms: expected a non-empty list of zstd, br, gzip, each once, found ['lzma']"),
    (["--compression-algorithms", "gzip,gzip"], "expected a non-empty list of zstd, br, gzip, each once"),
    (["--compression-min-size", "-1"], "--compression-min-size: expected an integer >= 0, found '-1'"),
])
def test_bad_options_are_config_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_pounce(["pounce.demo:app", "--compression", *args, "--check"], cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_content_type_in_toml(tmp_path: Path) -> None:
    (tmp_path / "pounce.toml").write_text('[compression]\nenabled = true\ncontent_types = ["*/*"]\n')
    result = run_pounce(["pounce.demo:app", "--check"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'pounce: error: pounce.toml: [compression] content_types: expected a list of media types: '
        '"type/sub", "type/*" or "type/*+suffix", found [\'*/*\']')
