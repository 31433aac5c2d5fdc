"""The static plugin against a real server on a real socket, with httpx,
raw sockets (for targets a client would normalise) and the pounce command."""

from __future__ import annotations

import email.utils
import gzip
import os
import time
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
import zstandard
from files_probes import Probe, raw_get

from pounce.plugins import static as static_plugin
from pounce.plugins.static.app import CHUNK
from pounce.plugins.static.files import SMALL_FILE
from pounce.testing import ServerProcess, ServerThread, run_pounce

CSS = b"body { color: #333; }\n" * 40
BIG = os.urandom(2 * CHUNK + 12345)  # streamed in chunks, or by pathsend
SECRET = b"outside the mount\n"


async def fallback(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The app behind the mounts: says which path reached it."""
    if scope["type"] != "http":
        return
    body = f"app: {scope['method']} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    public = tmp_path / "public"
    (public / "docs").mkdir(parents=True)
    (public / "empty").mkdir()
    (public / ".hidden").mkdir()
    (public / "hello.txt").write_bytes(b"hello, static\n")
    (public / "style.css").write_bytes(CSS)
    (public / "style.css.gz").write_bytes(gzip.compress(CSS))
    (public / "style.css.br").write_bytes(brotli.compress(CSS))
    (public / "style.css.zst").write_bytes(zstandard.ZstdCompressor().compress(CSS))
    (public / "big.bin").write_bytes(BIG)
    (public / "app.js").write_bytes(b"console.log(1)\n")
    (public / "data.json").write_bytes(b"{}")
    (public / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (public / "blob.unknownext").write_bytes(b"?")
    (public / "backup.tar.gz").write_bytes(gzip.compress(b"tar"))
    (public / "café.txt").write_bytes(b"accented\n")
    (public / "docs" / "index.html").write_bytes(b"<h1>docs</h1>\n")
    (public / ".secret").write_bytes(b"dotfile\n")
    (public / ".hidden" / "x.txt").write_bytes(b"in a dot dir\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (public / "link-out.txt").symlink_to(outside / "secret.txt")
    (public / "dir-out").symlink_to(outside)
    (public / "link-in.txt").symlink_to(public / "hello.txt")
    os.mkfifo(public / "pipe")
    return public


def serve_static(tree: Path, plugins: tuple[Any, ...] = (), **overrides: Any) -> ServerThread:
    overrides.setdefault("static_mounts", {"/static": str(tree)})
    return ServerThread(fallback, plugins=plugins, **overrides)


# -- plain serving ------------------------------------------------------------


def test_get_and_head_of_a_file(tree: Path) -> None:
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        got = client.get("/static/hello.txt")
        head = client.head("/static/hello.txt")
    assert got.status_code == 200 and got.content == b"hello, static\n"
    assert got.headers["content-type"] == "text/plain; charset=utf-8"
    assert got.headers["content-length"] == "14"
    assert got.headers["cache-control"] == "public, max-age=3600"
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["etag"].startswith('"')
    mtime = (tree / "hello.txt").stat().st_mtime
    assert got.headers["last-modified"] == email.utils.formatdate(mtime, usegmt=True)
    assert "vary" not in got.headers  # no sibling: nothing varies
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified"):
        assert head.headers[name] == got.headers[name]


def test_other_methods_get_405_with_allow(tree: Path) -> None:
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            response = client.request(method, "/static/hello.txt")
            assert response.status_code == 405, method
            assert response.headers["allow"] == "GET, HEAD"
        # Not a file: the app's to answer, whatever the method.
        assert client.post("/static/nothing-here").text == "app: POST /static/nothing-here"


@pytest.mark.parametrize(("name", "expected"), [
    ("style.css", "text/css; charset=utf-8"),
    ("docs/index.html", "text/html; charset=utf-8"),
    ("app.js", "charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"),
    ("pic.png", "image/png"),
    ("blob.unknownext", "application/octet-stream"),
    ("backup.tar.gz", "application/gzip"),
])
def test_content_type(tree: Path, name: str, expected: str) -> None:
    with serve_static(tree) as server:
        response = httpx.get(f"{server.url}/static/{name}", headers={"accept-encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"].endswith(expected)
    assert "content-encoding" not in response.headers  # a .tar.gz is sent as the archive it is


def test_unicode_name(tree: Path) -> None:
    with serve_static(tree) as server:
        assert httpx.get(server.url + "/static/caf%C3%A9.txt").content == b"accented\n"


def test_large_file_whole_and_in_range(tree: Path) -> None:
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        whole = client.get("/static/big.bin")
        part = client.get("/static/big.bin", headers={"range": "bytes=100000-150000"})
    assert whole.content == BIG and whole.headers["content-length"] == str(len(BIG))
    assert part.status_code == 206 and part.content == BIG[100000:150001]


def test_a_changed_file_is_served_fresh(tree: Path) -> None:
    path = tree / "hello.txt"
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        first = client.get("/static/hello.txt")
        path.write_bytes(b"changed, and longer than before\n")
        os.utime(path, (time.time() + 5, time.time() + 5))
        second = client.get("/static/hello.txt")
    assert second.content == b"changed, and longer than before\n"
    assert second.headers["etag"] != first.headers["etag"]


# -- conditional requests ---------------------------------------------------------


def test_etag_and_last_modified_give_304(tree: Path) -> None:
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        first = client.get("/static/hello.txt")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        later = email.utils.formatdate(time.time() + 3600, usegmt=True)
        earlier = email.utils.formatdate(time.time() - 86400 * 365, usegmt=True)
        cases = {
            "etag": ({"if-none-match": etag}, 304),
            "weak form": ({"if-none-match": "W/" + etag}, 304),
            "in a list": ({"if-none-match": f'"other", {etag}'}, 304),
            "star": ({"if-none-match": "*"}, 304),
            "other etag": ({"if-none-match": '"other"'}, 200),
            "same date": ({"if-modified-since": modified}, 304),
            "later date": ({"if-modified-since": later}, 304),
            "earlier date": ({"if-modified-since": earlier}, 200),
            "bad date": ({"if-modified-since": "yesterday"}, 200),
            # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
            "etag first": ({"if-none-match": '"other"', "if-modified-since": later}, 200),
        }
        for label, (headers, status) in cases.items():
            response = client.get("/static/hello.txt", headers=headers)
            assert response.status_code == status, label
            if status == 304:
                assert response.content == b"" and response.headers["etag"] == etag, label
                assert "content-type" not in response.headers and "content-length" not in response.headers
        head = client.head("/static/hello.txt", headers={"if-none-match": etag})
    assert head.status_code == 304


def test_ranges(tree: Path) -> None:
    size = len(CSS)
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        def get(value: str, **extra: str) -> httpx.Response:
            return client.get("/static/style.css", headers={"range": value, "accept-encoding": "identity", **extra})

        first = get("bytes=0-9")
        assert first.status_code == 206 and first.content == CSS[:10]
        assert first.headers["content-range"] == f"bytes 0-9/{size}"
        assert first.headers["content-length"] == "10"
        assert get("bytes=-7").content == CSS[-7:]
        assert get("bytes=100-").content == CSS[100:]
        assert get(f"bytes=5-{size * 10}").headers["content-range"] == f"bytes 5-{size - 1}/{size}"
        for unsatisfiable in (f"bytes={size}-", "bytes=-0"):
            response = get(unsatisfiable)
            assert response.status_code == 416, unsatisfiable
            assert response.headers["content-range"] == f"bytes */{size}"
        # Ignored (the whole file): several ranges, another unit, nonsense.
        for ignored in ("bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=x-y", "bytes=" + "9" * 5000):
            response = get(ignored)
            assert response.status_code == 200 and response.content == CSS, ignored
        etag = first.headers["etag"]
        assert get("bytes=0-9", **{"if-range": etag}).status_code == 206
        assert get("bytes=0-9", **{"if-range": '"stale"'}).status_code == 200
        assert get("bytes=0-9", **{"if-range": "W/" + etag}).status_code == 200  # weak never matches
        modified = first.headers["last-modified"]
        assert get("bytes=0-9", **{"if-range": modified}).status_code == 206
        head = client.head("/static/style.css", headers={"range": "bytes=0-9"})
        assert head.status_code == 200  # Range is for GET only


# -- directories --------------------------------------------------------------


def test_index_and_redirect(tree: Path) -> None:
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        moved = client.get("/static/docs?lang=en")
        assert moved.status_code == 301
        assert moved.headers["location"] == "./docs/?lang=en"
        followed = client.get("/static/docs", follow_redirects=True)
        assert followed.url.path == "/static/docs/" and followed.content == b"<h1>docs</h1>\n"
        assert followed.headers["content-type"] == "text/html; charset=utf-8"
        # No index: no listing, the app answers.
        assert client.get("/static/empty/").text == "app: GET /static/empty/"
        assert client.get("/static/empty").text == "app: GET /static/empty"
        assert client.get("/static/").text == "app: GET /static/"
        # A file asked for as a directory is not there.
        assert client.get("/static/hello.txt/").text == "app: GET /static/hello.txt/"


def test_mount_root_redirects_to_its_slash(tree: Path) -> None:
    (tree / "index.html").write_bytes(b"root index")
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        moved = client.get("/static")
        assert moved.status_code == 301 and moved.headers["location"] == "./static/"
        assert client.get("/static", follow_redirects=True).content == b"root index"


def test_index_can_be_turned_off(tree: Path) -> None:
    with serve_static(tree, static_index="") as server:
        assert httpx.get(server.url + "/static/docs/").text == "app: GET /static/docs/"


# -- precompressed siblings -------------------------------------------------------


def test_precompressed_sibling_by_accept_encoding(tree: Path) -> None:
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        def raw(accept: str) -> httpx.Response:
            with client.stream("GET", "/static/style.css", headers={"accept-encoding": accept}) as r:
                r.raw_bytes = b"".join(r.iter_raw())  # type: ignore[attr-defined]
                return r

        expected = {"gzip": "style.css.gz", "br": "style.css.br", "zstd": "style.css.zst"}
        etags = set()
        for coding, sibling in expected.items():
            response = raw(coding)
            assert response.headers["content-encoding"] == coding
            assert response.raw_bytes == (tree / sibling).read_bytes()  # type: ignore[attr-defined]
            assert response.headers["content-length"] == str((tree / sibling).stat().st_size)
            assert response.headers["content-type"] == "text/css; charset=utf-8"
            assert response.headers["vary"] == "Accept-Encoding"
            etags.add(response.headers["etag"])
        plain = raw("identity")
        assert "content-encoding" not in plain.headers and plain.raw_bytes == CSS  # type: ignore[attr-defined]
        assert plain.headers["vary"] == "Accept-Encoding"
        etags.add(plain.headers["etag"])
        assert len(etags) == 4  # one ETag per representation
        # q-values first, then the plugin's order (zstd, br, gzip).
        assert raw("gzip, br;q=0.5").headers["content-encoding"] == "gzip"
        assert raw("gzip, br, zstd").headers["content-encoding"] == "zstd"
        assert raw("*").headers["content-encoding"] == "zstd"
        assert raw("zstd;q=0, br;q=0, *;q=0.1").headers["content-encoding"] == "gzip"
        # httpx decodes what it asked for: the content is the file.
        decoded = client.get("/static/style.css")
        assert decoded.headers["content-encoding"] in ("gzip", "br", "zstd")
        assert decoded.content == CSS
        # A range of the compressed representation.
        part = client.get("/static/style.css", headers={"accept-encoding": "gzip", "range": "bytes=0-3"})
        assert part.status_code == 206 and part.headers["content-encoding"] == "gzip"
        size = (tree / "style.css.gz").stat().st_size
        assert part.headers["content-range"] == f"bytes 0-3/{size}"


@pytest.mark.slow
def test_siblings_come_and_go(tree: Path) -> None:
    gz = tree / "hello.txt.gz"
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        assert "content-encoding" not in client.get("/static/hello.txt").headers
        gz.write_bytes(gzip.compress(b"hello, static\n"))
        deadline = time.monotonic() + 5  # a missing sibling is looked for again within a second
        while "content-encoding" not in client.get("/static/hello.txt").headers:
            assert time.monotonic() < deadline, "the new sibling was never served"
            time.sleep(0.1)
        gz.unlink()
        response = client.get("/static/hello.txt")  # checked when chosen: gone at once
        assert "content-encoding" not in response.headers and response.content == b"hello, static\n"


def test_precompressed_off(tree: Path) -> None:
    with serve_static(tree, static_precompressed=False) as server:
        response = httpx.get(server.url + "/static/style.css", headers={"accept-encoding": "gzip, br, zstd"})
    assert "content-encoding" not in response.headers and "vary" not in response.headers


# -- mounts, fallthrough, cache-control --------------------------------------------


def test_fallthrough_and_prefix_boundaries(tree: Path) -> None:
    with serve_static(tree) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/static/missing.txt").text == "app: GET /static/missing.txt"
        assert client.get("/staticky/hello.txt").text == "app: GET /staticky/hello.txt"
        assert client.get("/hello.txt").text == "app: GET /hello.txt"
    with serve_static(tree, static_fallthrough=False) as server, httpx.Client(base_url=server.url) as client:
        missing = client.get("/static/missing.txt")
        assert missing.status_code == 404 and missing.text == "not found\n"
        assert client.get("/elsewhere").text == "app: GET /elsewhere"


def test_mounts_with_their_own_cache_control(tree: Path, tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "app.1234.js").write_bytes(b"hashed")
    mounts = {"/static": str(tree),
              "/static/assets": {"dir": str(assets), "cache_control": "public, max-age=31536000, immutable"},
              "/nocache": {"dir": str(tree), "cache_control": ""}}
    with serve_static(tree, static_mounts=mounts) as server, httpx.Client(base_url=server.url) as client:
        nested = client.get("/static/assets/app.1234.js")  # the longer prefix wins
        assert nested.content == b"hashed"
        assert nested.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert client.get("/static/hello.txt").headers["cache-control"] == "public, max-age=3600"
        plain = client.get("/nocache/hello.txt")
        assert plain.content == b"hello, static\n" and "cache-control" not in plain.headers


def test_root_path_prefixes_the_mounts(tree: Path) -> None:
    with serve_static(tree, root_path="/app") as server:
        response = httpx.get(server.url + "/static/hello.txt")
    assert response.content == b"hello, static\n"


def test_a_mount_at_the_root(tree: Path) -> None:
    with serve_static(tree, static_mounts={"/": str(tree)}) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/hello.txt").content == b"hello, static\n"
        assert client.get("/docs/").content == b"<h1>docs</h1>\n"
        assert client.get("/api/users").text == "app: GET /api/users"


# -- safe by construction: one test per attack ---------------------------------------
#
# With fallthrough off, a refused path is a plain 404 from the plugin; the
# secret's bytes never appear. Targets go over a raw socket, as a client
# that normalises paths would never send them.


def refused(server: ServerThread, target: str) -> None:
    status, _, body = raw_get(server.port, target)
    assert status == 404, (target, status, body)
    assert body == b"not found\n"
    assert SECRET not in body


@pytest.fixture
def strict(tree: Path) -> Any:
    with serve_static(tree, static_fallthrough=False) as server:
        yield server


def test_dot_dot(strict: ServerThread) -> None:
    refused(strict, "/static/../outside/secret.txt")
    refused(strict, "/static/docs/../../outside/secret.txt")


def test_encoded_dot_dot(strict: ServerThread) -> None:
    refused(strict, "/static/%2e%2e/outside/secret.txt")
    refused(strict, "/static/%2E%2E/outside/secret.txt")
    refused(strict, "/static/.%2e/outside/secret.txt")
    refused(strict, "/static/%2e%2e%2foutside%2fsecret.txt")


def test_backslashes(strict: ServerThread) -> None:
    refused(strict, "/static/..\\outside\\secret.txt")
    refused(strict, "/static/%5c..%5coutside%5csecret.txt")
    refused(strict, "/static/docs%5cindex.html")


def test_nul_bytes(strict: ServerThread) -> None:
    refused(strict, "/static/hello.txt%00.png")
    refused(strict, "/static/%00")


def test_absolute_paths(strict: ServerThread, tree: Path) -> None:
    secret = tree.parent / "outside" / "secret.txt"
    refused(strict, "/static/" + str(secret))  # "//tmp/..." : an absolute path is just segments
    refused(strict, "/static/%2f" + str(secret).lstrip("/").replace("/", "%2f"))
    refused(strict, "/static//etc/passwd")


def test_symlinks_leaving_the_root(strict: ServerThread) -> None:
    refused(strict, "/static/link-out.txt")
    refused(strict, "/static/dir-out/secret.txt")
    status, _, body = raw_get(strict.port, "/static/link-in.txt")  # inside the mount: fine
    assert status == 200 and body == b"hello, static\n"


def test_follow_symlinks_allows_them(tree: Path) -> None:
    with serve_static(tree, static_follow_symlinks=True) as server:
        assert httpx.get(server.url + "/static/link-out.txt").content == SECRET
        assert httpx.get(server.url + "/static/dir-out/secret.txt").content == SECRET


def test_dotfiles(strict: ServerThread) -> None:
    refused(strict, "/static/.secret")
    refused(strict, "/static/.hidden/x.txt")
    refused(strict, "/static/%2esecret")


def test_dotfiles_allowed(tree: Path) -> None:
    with serve_static(tree, static_dotfiles=True) as server:
        assert httpx.get(server.url + "/static/.secret").content == b"dotfile\n"
        assert httpx.get(server.url + "/static/.hidden/x.txt").content == b"in a dot dir\n"
        _, _, body = raw_get(server.port, "/static/.hidden/../../outside/secret.txt")
        assert body == b"app: GET /static/.hidden/../../outside/secret.txt"  # dotfiles never lets .. through


def test_no_directory_listing(strict: ServerThread) -> None:
    refused(strict, "/static/empty/")
    refused(strict, "/static/.")


def test_only_regular_files(strict: ServerThread) -> None:
    refused(strict, "/static/pipe")  # a FIFO: opening it would block, so it is never opened


# -- how the bytes leave: pathsend ------------------------------------------------------


def test_pathsend_when_the_server_offers_it(tree: Path) -> None:
    probe = Probe(pathsend=True, ranges=True)
    with serve_static(tree, plugins=(probe,)) as server, httpx.Client(base_url=server.url) as client:
        whole = client.get("/static/big.bin")
        part = client.get("/static/big.bin", headers={"range": "bytes=10-99"})
        small = client.get("/static/hello.txt")
        head = client.head("/static/big.bin")
    assert whole.content == BIG and part.content == BIG[10:100] and small.content == b"hello, static\n"
    assert head.content == b""
    real = os.path.realpath(tree / "big.bin")
    assert probe.pathsends() == [
        {"type": "http.response.pathsend", "path": real},
        {"type": "http.response.pathsend", "path": real, "offset": 10, "count": 90},
    ]  # small files go from memory, HEAD sends no body


def test_pathsend_without_ranges_streams_a_range(tree: Path) -> None:
    probe = Probe(pathsend=True, ranges=False)
    with serve_static(tree, plugins=(probe,)) as server, httpx.Client(base_url=server.url) as client:
        part = client.get("/static/big.bin", headers={"range": f"bytes={SMALL_FILE}-"})
        whole = client.get("/static/big.bin")
    assert part.status_code == 206 and part.content == BIG[SMALL_FILE:]
    assert whole.content == BIG
    assert [m.get("offset") for m in probe.pathsends()] == [None]  # only the whole file went by pathsend
    bodies = [m for p, m in probe.sent if m["type"] == "http.response.body"]
    assert sum(len(m["body"]) for m in bodies) == len(BIG) - SMALL_FILE


def test_without_pathsend_large_files_go_in_chunks(tree: Path) -> None:
    probe = Probe()
    with serve_static(tree, plugins=(probe,)) as server:
        assert httpx.get(server.url + "/static/big.bin").content == BIG
    bodies = [m for _, m in probe.sent if m["type"] == "http.response.body"]
    assert len(bodies) > 1 and all(len(m["body"]) <= CHUNK for m in bodies)
    assert [m.get("more_body", False) for m in bodies][-1] is False


# -- configuration -------------------------------------------------------------------


def test_inert_without_mounts() -> None:
    from pounce.core.config import ServerConfig

    config = ServerConfig.load(env={}, discover=False)
    assert static_plugin.pounce_wrap_app(config=config, app=fallback) is None


def test_cli_flag_repeats(tree: Path, tmp_path: Path, pounce_process: Any) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_bytes(b"other")
    proc = pounce_process("pounce.demo:app", "--port", "0", "--static", f"/static={tree}",
                          "--static", f"/o={other}", "--static-cache-control", "no-cache")
    assert httpx.get(proc.url + "/static/hello.txt").headers["cache-control"] == "no-cache"
    assert httpx.get(proc.url + "/o/o.txt").content == b"other"
    assert httpx.get(proc.url + "/healthz").status_code == 200  # the demo app is still behind
    assert f"static: /static -> {tree}" in proc.output()


def test_toml_table_and_environment(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "pounce.toml").write_text(
        '[server]\napp = "pounce.demo:app"\nport = 0\n\n[static.mounts]\n'
        f'"/files" = {{ dir = "{tree.name}", cache_control = "private" }}\n')
    (tmp_path / "public" / "x.txt").write_bytes(b"x")
    with ServerProcess([], cwd=tmp_path) as proc:
        response = httpx.get(proc.url + "/files/x.txt")
        assert response.content == b"x" and response.headers["cache-control"] == "private"
    env = {**os.environ, "POUNCE_STATIC_MOUNTS": f"/a={tree},/b={tree}"}
    result = run_pounce(["pounce.demo:app", "--check"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f'mounts = {{ "/a" = "{tree}", "/b" = "{tree}" }}    # from env' in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--static", "/s=does-not-exist"],
     "pounce: error: --static: expected an existing directory for '/s', found 'does-not-exist' (no such directory)"),
    (["--static", "s=."], "pounce: error: --static: expected a URL path starting with / as a mount prefix, found 's'"),
    (["--static", "/a/../b=."], "expected a URL path without empty, . or .. segments as a mount prefix"),
    (["--static", "nothing"], "pounce: error: --static: expected a table (KEY=VALUE items as text), found ['nothing']"),
    (["--static", "/a=.", "--static-index", "a/b"], "--static-index: expected a file name (no slashes), found 'a/b'"),
])
def test_bad_mounts_are_config_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_pounce(["pounce.demo:app", "--port", "0", *args], cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_mount_table_in_toml(tmp_path: Path) -> None:
    (tmp_path / "pounce.toml").write_text('[static.mounts]\n"/a" = { directory = "." }\n')
    result = run_pounce(["pounce.demo:app", "--check"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "pounce: error: pounce.toml: [static] mounts: expected the keys dir and cache_control for '/a', "
        "found 'directory'")
