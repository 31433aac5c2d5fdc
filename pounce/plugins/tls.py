"""Built-in plugin ``tls``: HTTPS and WSS from the ``[tls]`` section.

Inert until ``certfile`` is set. The core never builds a context itself: it
takes whatever ``pounce_tls_context`` returns, so a third-party plugin can
replace this one by answering the hook first.

The context is a pure function of the config (:func:`build_context`), so a
process worker can rebuild its own from the pickled config; threads share
the one built in the main process (``SSLContext`` is safe to share).

Certificate reload: the context watches its certificate, key and CA files and
picks up new ones without a restart, and SIGHUP forces a reload where nobody
else handles that signal (see :class:`CertificateWatcher`).
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pounce import hookimpl
from pounce.core.errors import ConfigError
from pounce.core.transport.tls import register_server_cert

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig

name = "tls"

logger = logging.getLogger("pounce.tls")

_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_CLI_FLAGS = {
    "certfile": "--ssl-certfile",
    "keyfile": "--ssl-keyfile",
    "keyfile_password": "--ssl-keyfile-password",
    "ca_certs": "--ssl-ca-certs",
    "cert_reqs": "--ssl-cert-reqs",
    "ciphers": "--ssl-ciphers",
    "minimum_version": "--ssl-minimum-version",
    "reload_interval": "--ssl-reload-interval",
}


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("tls", "certfile", "str", None, "PEM certificate chain file (may hold the key too).",
        cli="--ssl-certfile", nullable=True, metavar="PATH")
    add("tls", "keyfile", "str", None, "PEM private key file.", cli="--ssl-keyfile", nullable=True,
        metavar="PATH")
    add("tls", "keyfile_password", "str", None, "Password of an encrypted key file.",
        cli="--ssl-keyfile-password", nullable=True, metavar="PASSWORD")
    add("tls", "ca_certs", "str", None, "CA bundle used to verify client certificates.",
        cli="--ssl-ca-certs", nullable=True, metavar="PATH")
    add("tls", "cert_reqs", "str", "none", "Client certificates: none | optional | required (or 0/1/2).",
        cli="--ssl-cert-reqs", choices=("none", "optional", "required"), metavar="{none,optional,required}",
        aliases={"0": "none", "1": "optional", "2": "required", 0: "none", 1: "optional", 2: "required"})
    add("tls", "ciphers", "str", None, "OpenSSL cipher string for TLS 1.2 and below.",
        cli="--ssl-ciphers", nullable=True, metavar="CIPHERS")
    add("tls", "minimum_version", "str", "TLSv1.2", "Lowest TLS version accepted.",
        cli="--ssl-minimum-version", choices=("TLSv1.2", "TLSv1.3"))
    add("tls", "reload_interval", "float", 2.0,
        "Seconds between checks of the certificate files for changes (0: only on SIGHUP).",
        cli="--ssl-reload-interval", min=0.0, metavar="SECONDS")


# -- settings and errors ---------------------------------------------------------


@dataclass(frozen=True)
class TLSSettings:
    """The ``[tls]`` section, plus where each value came from (for errors)."""

    certfile: str | None
    keyfile: str | None
    keyfile_password: str | None
    ca_certs: str | None
    cert_reqs: str
    ciphers: str | None
    minimum_version: str
    reload_interval: float
    origins: tuple[tuple[str, str], ...] = ()
    # ALPN offers, best first: h2 while [http2] is enabled.
    alpn: tuple[str, ...] = ("h2", "http/1.1")

    @classmethod
    def from_config(cls, config: ServerConfig) -> TLSSettings:
        tls = config.section("tls")
        keys = ("certfile", "keyfile", "keyfile_password", "ca_certs", "cert_reqs", "ciphers",
                "minimum_version", "reload_interval")
        return cls(
            certfile=tls.get("certfile") or None,
            keyfile=tls.get("keyfile") or None,
            keyfile_password=tls.get("keyfile_password"),
            ca_certs=tls.get("ca_certs") or None,
            cert_reqs=tls.get("cert_reqs") or "none",
            ciphers=tls.get("ciphers") or None,
            minimum_version=tls.get("minimum_version") or "TLSv1.2",
            reload_interval=float(tls.get("reload_interval", 2.0)),
            alpn=("h2", "http/1.1") if config.get("http2", "enabled", True) else ("http/1.1",),
            origins=tuple((key, config.origin("tls", key)) for key in keys),
        )

    def error(self, key: str, expected: str, found: str) -> ConfigError:
        """A one-line error naming where ``key`` was set, the key, what was
        expected and what was found."""
        origin = dict(self.origins).get(key, "default")
        if origin == "cli":
            where = f"{_CLI_FLAGS.get(key, key)}"
        elif origin == "env":
            where = f"environment POUNCE_TLS_{key.upper()}"
        elif origin == "override":
            where = f"override tls_{key}"
        elif origin == "default":
            where = f"[tls] {key}"
        else:
            where = f"{origin}: [tls] {key}"
        found = " ".join(found.split())
        return ConfigError(f"{where}: expected {expected}, found {found}")


def _read_pem(settings: TLSSettings, key: str, what: str) -> str:
    """Read the file ``settings.<key>`` as text, turning every way it can be
    unusable into a one-line ConfigError."""
    path: str = getattr(settings, key)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise settings.error(key, what, f"{path!r} (no such file)") from None
    except IsADirectoryError:
        raise settings.error(key, what, f"{path!r} (a directory)") from None
    except PermissionError:
        raise settings.error(key, what, f"{path!r} (permission denied)") from None
    except OSError as exc:
        raise settings.error(key, what, f"{path!r} ({exc.strerror or exc})") from None
    return data.decode("ascii", errors="replace")


def _is_encrypted(key_pem: str) -> bool:
    return "BEGIN ENCRYPTED PRIVATE KEY" in key_pem or "Proc-Type: 4,ENCRYPTED" in key_pem


def _first_cert(pem: str) -> str | None:
    begin = pem.find("-----BEGIN CERTIFICATE-----")
    end_marker = "-----END CERTIFICATE-----"
    end = pem.find(end_marker, begin)
    if begin < 0 or end < 0:
        return None
    return pem[begin:end + len(end_marker)] + "\n"


def _check(settings: TLSSettings) -> None:
    """Combinations that make no sense, before touching any file."""
    if settings.certfile is None:
        for key, what in (("keyfile", "a key"), ("ca_certs", "a CA bundle")):
            value = getattr(settings, key)
            if value:
                raise settings.error(
                    key, "certfile to be set as well",
                    f"{what} ({value!r}) without a certificate (set [tls] certfile / --ssl-certfile)",
                )
        if settings.cert_reqs != "none":
            raise settings.error("cert_reqs", "certfile to be set as well",
                                 f"{settings.cert_reqs!r} without a certificate")
        return
    if settings.cert_reqs != "none" and not settings.ca_certs:
        raise settings.error(
            "cert_reqs", "ca_certs (--ssl-ca-certs) to verify client certificates with",
            f"{settings.cert_reqs!r} and no ca_certs",
        )


def _load(settings: TLSSettings) -> tuple[ssl.SSLContext, str | None]:
    """Build a server context from ``settings``: the one place that reads the
    files. Returns the context and the server certificate's PEM."""
    assert settings.certfile is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[settings.minimum_version]
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(list(settings.alpn))

    cert_pem = _read_pem(settings, "certfile", "a readable PEM certificate file")
    if "-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise settings.error("certfile", "a PEM certificate (-----BEGIN CERTIFICATE-----)",
                             f"none in {settings.certfile!r}")
    key_source = "keyfile" if settings.keyfile else "certfile"
    key_pem = _read_pem(settings, "keyfile", "a readable PEM key file") if settings.keyfile else cert_pem
    if "PRIVATE KEY-----" not in key_pem:
        if settings.keyfile:
            raise settings.error("keyfile", "a PEM private key (-----BEGIN ... PRIVATE KEY-----)",
                                 f"none in {settings.keyfile!r}")
        raise settings.error("keyfile", "the private key: set keyfile or put the key in certfile",
                             f"no private key in {settings.certfile!r}")
    encrypted = _is_encrypted(key_pem)
    if encrypted and not settings.keyfile_password:
        raise settings.error("keyfile_password", f"the password of the encrypted key in {key_source}",
                             "none")
    password = settings.keyfile_password or ""
    try:
        # A callable password, never None: OpenSSL would otherwise prompt on
        # the terminal for an encrypted key.
        context.load_cert_chain(settings.certfile, settings.keyfile, lambda: password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise settings.error(
                key_source, f"the private key of the certificate in {settings.certfile!r}",
                f"a key that does not match it in {getattr(settings, key_source)!r}",
            ) from None
        if encrypted:
            raise settings.error("keyfile_password", f"the password of the encrypted key in {key_source}",
                                 "a wrong password (the key cannot be decrypted)") from None
        raise settings.error(key_source, "a valid PEM certificate and private key",
                             f"{getattr(settings, key_source)!r} rejected by OpenSSL: {exc}") from None

    context.verify_mode = _CERT_REQS[settings.cert_reqs]
    if settings.ca_certs:
        ca_pem = _read_pem(settings, "ca_certs", "a readable PEM CA bundle")
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise settings.error("ca_certs", "PEM CA certificates (-----BEGIN CERTIFICATE-----)",
                                 f"none in {settings.ca_certs!r}")
        try:
            context.load_verify_locations(cafile=settings.ca_certs)
        except ssl.SSLError as exc:
            raise settings.error("ca_certs", "valid PEM CA certificates",
                                 f"{settings.ca_certs!r} rejected by OpenSSL: {exc}") from None
    if settings.ciphers:
        try:
            context.set_ciphers(settings.ciphers)
        except ssl.SSLError:
            raise settings.error("ciphers", "an OpenSSL cipher string that selects at least one cipher",
                                 f"{settings.ciphers!r}") from None
    return context, _first_cert(cert_pem)


# -- reload ---------------------------------------------------------------------


class CertificateWatcher:
    """Swaps in new certificates when their files change, without a restart.

    The context handed to the server stays the same object; its SNI callback
    (which OpenSSL runs for every handshake, with or without a server name)
    moves each new connection onto the newest context. The files are
    stat()ed at most once per ``interval`` seconds, during a handshake, so an
    idle server does no work and no timer or thread is needed, in any worker
    mode. A reload that fails (say the certificate was written but the key
    not yet) keeps the previous certificate and logs one warning; it is
    retried when the files change again. ``interval`` 0 turns the file checks
    off; :meth:`check` with ``force`` (SIGHUP) still reloads.
    """

    def __init__(self, settings: TLSSettings, context: ssl.SSLContext) -> None:
        self.settings = settings
        self.base = context
        self.current = context
        self.interval = settings.reload_interval if settings.reload_interval > 0 else float("inf")
        self.paths = [p for p in (settings.certfile, settings.keyfile, settings.ca_certs) if p]
        self.signature = self._signature()
        self.next_check = time.monotonic() + self.interval
        self.reloads = 0
        self._lock = threading.Lock()
        context.sni_callback = self._on_handshake

    def _signature(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for path in self.paths:
            try:
                st = os.stat(path)
            except OSError:
                out.append(None)
            else:
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _on_handshake(self, ssl_object: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        # Runs inside OpenSSL's handshake: an exception here would fail the
        # handshake for a reason the client cannot see, so none escapes.
        try:
            if time.monotonic() >= self.next_check:
                self.check()
            current = self.current
            if current is not self.base:
                ssl_object.context = current
        except Exception as exc:  # pragma: no cover - defensive
            logger.warning("TLS certificate reload check failed: %s: %s", type(exc).__name__, exc)

    def check(self, force: bool = False) -> bool:
        """Reload if the files changed since the last attempt (or always with
        ``force``); True if reloaded."""
        if not self._lock.acquire(blocking=not force):
            return False  # another thread is reloading; it will swap for us
        try:
            self.next_check = time.monotonic() + self.interval
            signature = self._signature()
            if signature == self.signature and not force:
                return False
            self.signature = signature
            try:
                context, pem = _load(self.settings)
            except ConfigError as exc:
                logger.warning("TLS certificate reload failed, keeping the previous certificate: %s", exc)
                return False
            register_server_cert(context, pem)
            self.current = context
            self.reloads += 1
            logger.info("TLS certificate reloaded from %s", self.settings.certfile)
            return True
        finally:
            self._lock.release()


# -- bad clients: one quiet line, never a traceback ---------------------------------


class QuietTLSErrors(logging.Filter):
    """Turns asyncio's records about failed TLS connections into one line.

    Clients that speak plain HTTP to the TLS port, send garbage, abort or
    stall the handshake are the client's problem, not the server's. asyncio
    already keeps quiet about them unless the loop runs in debug mode
    (``PYTHONASYNCIODEBUG``, ``-X dev``), where it logs each with a full
    traceback; this filter keeps the line, drops the traceback and lowers the
    record to DEBUG. Records about anything else pass through untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _is_tls_client_error(exc, record):
            return True
        first_line = record.getMessage().split("\n", 1)[0]
        record.msg = "%s: %s: %s"
        record.args = (first_line, type(exc).__name__, exc)
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.DEBUG:
            record.levelno = logging.DEBUG
            record.levelname = "DEBUG"
        return True


def _is_tls_client_error(exc: BaseException, record: logging.LogRecord) -> bool:
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError)) and "SSL" in (str(exc) + str(record.msg))


_quiet_filter = QuietTLSErrors()


def install_quiet_tls_errors() -> None:
    """Attach :class:`QuietTLSErrors` to the ``asyncio`` logger (once per process)."""
    asyncio_logger = logging.getLogger("asyncio")
    if _quiet_filter not in asyncio_logger.filters:
        asyncio_logger.addFilter(_quiet_filter)


# -- the public, pure builder and the hooks ----------------------------------------------


def build_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server ``SSLContext`` for ``config``, or None when ``[tls] certfile``
    is unset. Raises :class:`ConfigError` (one line) for anything unusable.

    Pure function of the config: call it again in each worker process.
    """
    settings = TLSSettings.from_config(config)
    _check(settings)
    if settings.certfile is None:
        return None
    context, pem = _load(settings)
    register_server_cert(context, pem)
    CertificateWatcher(settings, context)
    return context


def watcher_of(context: ssl.SSLContext | None) -> CertificateWatcher | None:
    """The reload watcher of a context :func:`build_context` made, else None.

    The watcher lives only as the context's SNI callback, so it goes away
    with the context; no registry keeps either alive.
    """
    callback = getattr(context, "sni_callback", None)
    owner = getattr(callback, "__self__", None)
    return owner if isinstance(owner, CertificateWatcher) else None


def _install_sighup(worker: Any, watcher: CertificateWatcher) -> None:
    """SIGHUP reloads the certificates, but only where the signal is free:
    in the main thread, with no handler installed by anyone else (the
    supervisor uses SIGHUP for a rolling restart, which rebuilds the contexts
    of process workers anyway)."""
    loop = getattr(worker, "loop", None)
    if loop is None or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL:
        return

    def on_sighup() -> None:
        logger.info("received SIGHUP: reloading TLS certificates")
        watcher.check(force=True)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    except (NotImplementedError, RuntimeError, ValueError):
        return


# The context built while validating in pounce_configure, handed out by the
# first pounce_tls_context call for the same config object (so the files are
# read once at startup). Anything else builds afresh.
_validated: dict[int, tuple[Any, ssl.SSLContext | None]] = {}
_validated_lock = threading.Lock()


@hookimpl
def pounce_configure(config: ServerConfig) -> None:
    """Validate ``[tls]`` by building the context, so every mistake exits 2
    with one line before anything binds."""
    context = build_context(config)
    with _validated_lock:
        _validated[id(config)] = (config, context)


@hookimpl
def pounce_tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The ``[tls]`` context; None when TLS is not configured.

    Called once in the main process (threads share the result). A process
    worker must call this hook again with its own (unpickled) config to get a
    context of its own; that call builds a fresh one.
    """
    with _validated_lock:
        stashed = _validated.pop(id(config), None)
    if stashed is not None and stashed[0] is config:
        return stashed[1]
    return build_context(config)


@hookimpl
def pounce_worker_started(worker: Any) -> None:
    """In every worker (thread or process) that serves TLS, whoever built the
    context: keep bad clients out of the log's tracebacks."""
    tls = getattr(getattr(worker, "ctx", None), "tls", None)
    if tls is None:
        return
    install_quiet_tls_errors()
    watcher = watcher_of(tls)
    if watcher is not None:
        # A worker starting late (the supervisor's rolling restart on SIGHUP,
        # a recycled worker) brings thread workers, which share this context,
        # up to date with the files: a few stat() calls.
        watcher.check()
        _install_sighup(worker, watcher)


@hookimpl
def pounce_unconfigure(config: ServerConfig) -> None:
    with _validated_lock:
        _validated.pop(id(config), None)


@hookimpl
def pounce_banner(config: ServerConfig, info: dict[str, Any]) -> list[str] | None:
    settings = TLSSettings.from_config(config)
    if settings.certfile is None:
        return None
    parts = [f"TLS: {settings.certfile}", f"minimum {settings.minimum_version}",
             f"client certificates {settings.cert_reqs}", "ALPN " + ", ".join(settings.alpn)]
    if settings.reload_interval > 0:
        parts.append(f"reload on change (checked every {settings.reload_interval:g}s) or SIGHUP")
    else:
        parts.append("reload on SIGHUP")
    return [", ".join(parts)]
