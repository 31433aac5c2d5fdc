"""The flag-by-flag tables of docs/migrating/ (``make docs`` writes them).

Two sources, neither typed into a page:

- the other server's options, captured from the installed tool itself into
  ``scripts/migration/<tool>.json`` (uvicorn's click command, gunicorn's
  settings registry, hypercorn's argparse parser) with its version — names,
  flags, defaults and accepted values, not the tools' help texts:

      pip install uvicorn gunicorn hypercorn      # in a scratch venv
      python scripts/docs_migration.py --capture uvicorn gunicorn hypercorn

- pounce's option registry: the flag, the TOML key and its reference page.

uvicorn's flags are matched to pounce's by name (pounce took uvicorn's names
wherever it has the same option), and differences in accepted values are
computed; the notes below add what a computation cannot know. gunicorn's and
hypercorn's options are mapped by hand to a registry option (by its
``section.key``), a pounce hook, or a note; the table then takes the flag and
the link from the registry, so a renamed pounce option never leaves a stale
table. A captured option without a mapping or a note is an error: re-capturing
a newer tool shows at once what the guide does not cover.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "scripts" / "migration"
PAGES = {tool: ROOT / "docs" / "migrating" / f"{tool}.md" for tool in ("uvicorn", "gunicorn", "hypercorn")}
START, END = "<!-- flags:start -->", "<!-- flags:end -->"

# -- capture (run where the other server is installed) ---------------------------------


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value) if not callable(value) else "<function>"


def capture_uvicorn() -> dict[str, Any]:
    import click
    import uvicorn
    from uvicorn.main import main

    options = []
    for param in main.params:
        if not isinstance(param, click.Option):
            continue
        choices = list(param.type.choices) if isinstance(param.type, click.Choice) else None
        if choices is None and param.metavar and re.fullmatch(r"\[[\w|-]+\]", param.metavar):
            choices = param.metavar[1:-1].split("|")  # a free string that lists its values
        options.append({"name": param.name, "flags": list(param.opts), "negative": list(param.secondary_opts),
                        "default": _jsonable(param.default), "choices": choices,
                        "takes_value": not param.is_flag})
    options.append({"name": "help", "flags": ["--help"], "negative": [], "default": None, "choices": None,
                    "takes_value": False})
    return {"tool": "uvicorn", "version": uvicorn.__version__, "options": options}


def capture_gunicorn() -> dict[str, Any]:
    import gunicorn
    from gunicorn.config import KNOWN_SETTINGS

    options = [{"name": s.name, "flags": list(s.cli or []), "section": s.section,
                "default": _jsonable(s.default)} for s in KNOWN_SETTINGS]
    return {"tool": "gunicorn", "version": gunicorn.__version__, "options": options}


def capture_hypercorn() -> dict[str, Any]:
    from importlib.metadata import version

    import hypercorn.__main__ as entry

    class Parsed(Exception):
        pass

    def grab(parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise Parsed(parser)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = grab  # type: ignore[method-assign,assignment]
    try:
        entry.main([])
    except Parsed as parsed:
        parser = parsed.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    options = [{"name": a.dest, "flags": list(a.option_strings)} for a in parser._actions]
    return {"tool": "hypercorn", "version": version("hypercorn"), "options": options}


CAPTURE = {"uvicorn": capture_uvicorn, "gunicorn": capture_gunicorn, "hypercorn": capture_hypercorn}

# -- what pounce says about the other servers' options -------------------------------------

# uvicorn flags pounce has under the same name: what differs beyond accepted values.
UVICORN_NOTES = {
    "--workers": "`auto` means one per CPU; `WEB_CONCURRENCY` is not read. Works together with `--reload`.",
    "--loop": "`auto` picks uvloop when it is installed (`pounce[uvloop]`), as uvicorn does.",
    "--http": "pounce always runs h11 with its own fast path; `httptools` is accepted and means the same.",
    "--ws": "`websockets` is accepted and means wsproto; `none` hands upgrade requests to the app as HTTP.",
    "--reload-dir": "Each directory must exist (a typo is a config error, not a silent no-op).",
    "--reload-include": "Matched against the file name or its trailing path (`templates/*.html`).",
    "--reload-exclude": "Also matched against every directory on the way; VCS folders, caches and editor "
                        "temporaries never trigger a reload.",
    "--log-config": "A `logging.config.dictConfig` in TOML or JSON (by extension); no `.ini` or YAML.",
    "--log-level": "Sets the `pounce` loggers; `--log-level debug` also shows tracebacks for startup errors.",
    "--proxy-headers": "Also reads `X-Forwarded-Host` and RFC 7239 `Forwarded` (which wins), from trusted "
                       "peers only; the client is the right-most untrusted address.",
    "--forwarded-allow-ips": "Default `127.0.0.1` only (uvicorn: `127.0.0.1,::1`, or `$FORWARDED_ALLOW_IPS`, "
                             "which pounce does not read). Unix-socket peers are trusted only when `unix` "
                             "is listed.",
    "--limit-concurrency": "Counted in connections at accept; connections already accepted keep being served.",
    "--limit-max-requests": "With several workers the replacement starts before the old worker drains; with "
                            "one, the server stops after N requests, as uvicorn does.",
    "--timeout-graceful-shutdown": "Default 30 s (uvicorn waits without limit); then open connections "
                                   "are closed.",
    "--timeout-keep-alive": "Seconds as a number (`2.5` is fine).",
    "--ssl-cert-reqs": "`none`, `optional`, `required`; uvicorn's `0`, `1`, `2` are accepted.",
    "--ssl-keyfile": "Mistakes (missing file, key not matching the certificate, wrong password) are one "
                     "line and exit 2 before anything binds.",
    "--h11-max-incomplete-event-size": "Applies to the fast path too: 431 for an oversized head (414 when "
                                       "the target alone is too long).",
    "--ws-ping-timeout": "No pong in time closes with 1011; `0` waits forever.",
    "--lifespan": "Startup failure exits with status 3.",
    "--http2": "On by default in pounce (ALPN `h2` under TLS, h2c on cleartext); `--no-http2` turns it off.",
}

# uvicorn flags pounce does not have: the way to get the same result.
UVICORN_MISSING = {
    "--reload-delay": "No flag: changes are grouped until the tree has been quiet for 100 ms (at most 1.6 s).",
    "--ws-max-queue": "No flag: pounce stops reading from a client once 64 KiB or 256 messages wait for "
                      "the app.",
    "--interface": "No flag: ASGI 3 and ASGI 2 apps are told apart automatically; WSGI apps are not served.",
    "--env-file": "No flag: set the environment in the process manager (systemd `EnvironmentFile=`, "
                  "Docker `--env-file`).",
    "--use-colors": "No flag: level names are coloured only when stderr is a terminal; `NO_COLOR=1` turns "
                    "colour off.",
    "--timeout-worker-healthcheck": "`--worker-timeout SECONDS` ([supervisor] worker_timeout): a worker whose "
                                    "heartbeat is silent that long is replaced.",
    "--ssl-version": "`--ssl-minimum-version TLSv1.2|TLSv1.3` ([tls] minimum_version).",
    "--reset-contextvars": "No equivalent option.",
    "--version": "`pounce --version`.",
    "--help": "`pounce --help`, generated from the option registry.",
}

_GUNICORN_PARSER = ("gunicorn's own HTTP parser; uvicorn workers do not use it, and neither does pounce "
                    "(h11 refuses such input with 400)")
_GUNICORN_ASGI = "for gunicorn's own ASGI worker (`-k asgi`), not uvicorn's"
_GUNICORN_DIRTY = "gunicorn's dirty arbiters (long tasks outside the workers) have no equivalent"
_GUNICORN_SYSLOG = "no syslog option: a `--log-config` with a `logging.handlers.SysLogHandler`"
_GUNICORN_STATSD = "no statsd: the pounce-prometheus contrib plugin exports request metrics"
_GUNICORN_USER = "pounce does not switch user: start it as that user (systemd `User=`, `Group=`)"

# gunicorn setting -> (pounce "section.key" | "hook:name" | None, note)
GUNICORN: dict[str, tuple[str | None, str]] = {
    "config": (None, "`--config pounce.toml` (TOML, or `[tool.pounce]` in pyproject.toml); a Python config "
                     "file's hooks become a plugin"),
    "wsgi_app": ("server.app", "the positional APP"),
    "bind": ("server.host", "`-b HOST:PORT` is `--host HOST --port PORT`; `unix:PATH` is `--uds PATH`; "
                            "`fd://N` is `--fd N`; one address per server"),
    "backlog": ("server.backlog", ""),
    "workers": ("server.workers", "`auto` is one per CPU; `WEB_CONCURRENCY` is not read"),
    "worker_class": ("server.worker_mode", "drop `-k uvicorn_worker.UvicornWorker`: pounce is the worker; "
                                           "`--worker-mode thread|process` picks its kind"),
    "threads": (None, "no equivalent: a pounce worker is an event loop (`--worker-mode thread` makes "
                      "workers threads instead of processes)"),
    "worker_connections": ("server.limit_concurrency", "per worker; uvicorn workers ignore the gunicorn setting"),
    "max_requests": ("server.max_requests", "the replacement starts before the old worker drains"),
    "max_requests_jitter": ("server.max_requests_jitter", ""),
    "timeout": ("supervisor.worker_timeout", "a worker whose heartbeat is silent this long is replaced"),
    "graceful_timeout": ("server.timeout_graceful_shutdown", ""),
    "keepalive": ("server.timeout_keep_alive", "default 5 s (gunicorn: 2 s)"),
    "limit_request_line": ("http.max_incomplete_event_size", "pounce limits the whole head, request line and "
                                                             "headers together (431, or 414 for the target)"),
    "limit_request_fields": ("http.max_incomplete_event_size", "the whole head is limited, not the count"),
    "limit_request_field_size": ("http.max_incomplete_event_size", "the whole head is limited"),
    "reload": ("reload.enabled", "a fresh interpreter per change, on the same socket"),
    "reload_engine": (None, "pounce always watches with watchfiles"),
    "reload_extra_files": ("reload.include", "watch directories (`--reload-dir`) and patterns (`--reload-include`)"),
    "spew": (None, "no equivalent"),
    "check_config": (None, "`pounce --check`"),
    "print_config": (None, "`pounce --check` prints the effective configuration"),
    "preload_app": (None, "no equivalent: process workers each import the app in a fresh interpreter "
                          "(never a fork); thread workers share one import"),
    "sendfile": (None, "no equivalent"),
    "reuse_port": ("supervisor.reuse_port", "one listener per worker; see the trade-off on the workers page"),
    "chdir": ("server.app_dir", "`--app-dir` puts a directory first on sys.path; start pounce in the "
                                "directory for the rest (systemd `WorkingDirectory=`)"),
    "daemon": (None, "no daemon mode: run under systemd, a container runtime or another supervisor"),
    "raw_env": (None, "set the environment in the process manager"),
    "pidfile": (None, "no pid file: systemd and container runtimes track the main process"),
    "worker_tmp_dir": (None, "not needed: heartbeats do not use files"),
    "user": (None, _GUNICORN_USER),
    "group": (None, _GUNICORN_USER),
    "umask": ("server.uds_permissions", "for the unix socket: `--uds-permissions 660`"),
    "initgroups": (None, _GUNICORN_USER),
    "tmp_upload_dir": (None, "WSGI only"),
    "secure_scheme_headers": ("server.proxy_headers", "`X-Forwarded-Proto` and `Forwarded: proto=` from "
                                                      "trusted proxies; the header names are fixed"),
    "forwarded_allow_ips": ("server.forwarded_allow_ips", "default `127.0.0.1` (gunicorn: `127.0.0.1,::1`)"),
    "accesslog": ("logging.access_log", "access lines go to stderr with the others; to a file through "
                                        "`--log-config`"),
    "disable_redirect_access_to_syslog": (None, _GUNICORN_SYSLOG),
    "access_log_format": ("logging.access_log_format", "pounce's own fields (`%(client)s`, "
                                                       "`%(request_line)s`…); uvicorn workers ignore gunicorn's"),
    "errorlog": (None, "stderr; a file through `--log-config`"),
    "loglevel": ("logging.level", ""),
    "capture_output": (None, "no equivalent"),
    "logger_class": ("logging.config_file", "a dictConfig file instead of a class"),
    "logconfig": ("logging.config_file", "a dictConfig in TOML or JSON; not the ini `fileConfig` format"),
    "logconfig_dict": ("logging.config_file", "the same dict, in a TOML or JSON file"),
    "logconfig_json": ("logging.config_file", "the same JSON file works"),
    "syslog_addr": (None, _GUNICORN_SYSLOG),
    "syslog": (None, _GUNICORN_SYSLOG),
    "syslog_prefix": (None, _GUNICORN_SYSLOG),
    "syslog_facility": (None, _GUNICORN_SYSLOG),
    "enable_stdio_inheritance": (None, "worker processes always inherit stderr"),
    "statsd_host": (None, _GUNICORN_STATSD),
    "dogstatsd_tags": (None, _GUNICORN_STATSD),
    "statsd_prefix": (None, _GUNICORN_STATSD),
    "enable_backlog_metric": (None, _GUNICORN_STATSD),
    "proc_name": (None, "no process titles"),
    "default_proc_name": (None, "no process titles"),
    "pythonpath": ("server.app_dir", "one directory; more through `PYTHONPATH`"),
    "paste": (None, "PasteDeploy is WSGI only"),
    "raw_paste_global_conf": (None, "PasteDeploy is WSGI only"),
    "on_starting": ("hook:pounce_configure", ""),
    "on_reload": ("hook:pounce_worker_spawn", "SIGHUP is a rolling restart: each new worker is spawned"),
    "when_ready": ("hook:pounce_sockets_bound", ""),
    "pre_fork": ("hook:pounce_worker_spawn", ""),
    "post_fork": ("hook:pounce_worker_started", "runs inside the worker"),
    "post_worker_init": ("hook:pounce_worker_started", ""),
    "worker_int": (None, "no equivalent"),
    "worker_abort": (None, "no equivalent"),
    "pre_exec": (None, "no equivalent"),
    "pre_request": ("hook:pounce_wrap_app", "an ASGI wrapper, collected once per worker"),
    "post_request": ("hook:pounce_request_observer", "a plain callable per worker"),
    "child_exit": ("hook:pounce_worker_exit", ""),
    "worker_exit": ("hook:pounce_worker_exit", ""),
    "nworkers_changed": ("hook:pounce_worker_exit", "and `pounce_worker_spawn`"),
    "on_exit": ("hook:pounce_unconfigure", ""),
    "ssl_context": ("hook:pounce_tls_context", ""),
    "proxy_protocol": (None, "the pounce-proxy-protocol contrib plugin; uvicorn workers ignore gunicorn's"),
    "proxy_allow_ips": (None, "the pounce-proxy-protocol contrib plugin's trusted addresses"),
    "protocol": (None, "HTTP only; no uwsgi protocol"),
    "uwsgi_allow_ips": (None, "HTTP only; no uwsgi protocol"),
    "keyfile": ("tls.keyfile", ""),
    "certfile": ("tls.certfile", ""),
    "ssl_version": ("tls.minimum_version", "a minimum version, `TLSv1.2` or `TLSv1.3`"),
    "cert_reqs": ("tls.cert_reqs", "`none`, `optional`, `required` (or 0, 1, 2)"),
    "ca_certs": ("tls.ca_certs", ""),
    "suppress_ragged_eofs": (None, "no equivalent"),
    "do_handshake_on_connect": (None, "no equivalent: handshakes are asynchronous, bounded by "
                                      "`--timeout-request-header`"),
    "ciphers": ("tls.ciphers", ""),
    "http_protocols": ("http2.enabled", "HTTP/1.1 and HTTP/2 are both on by default; `--no-http2` leaves "
                                        "HTTP/1.1 only"),
    "http2_cleartext": ("http2.enabled", "h2c (prior knowledge and `Upgrade: h2c`) comes with HTTP/2"),
    "http2_max_concurrent_streams": ("http2.max_concurrent_streams", ""),
    "http2_initial_window_size": ("http2.initial_window_size", ""),
    "http2_max_frame_size": ("http2.max_frame_size", ""),
    "http2_max_header_list_size": ("http2.max_header_list_size", ""),
    "permit_obsolete_folding": (None, _GUNICORN_PARSER),
    "strip_header_spaces": (None, _GUNICORN_PARSER),
    "permit_unconventional_http_method": (None, _GUNICORN_PARSER),
    "permit_unconventional_http_version": (None, _GUNICORN_PARSER),
    "casefold_http_method": (None, _GUNICORN_PARSER),
    "forwarder_headers": (None, "WSGI only"),
    "header_map": (None, "WSGI only"),
    "asgi_loop": ("server.loop", _GUNICORN_ASGI),
    "asgi_lifespan": ("server.lifespan", _GUNICORN_ASGI),
    "asgi_disconnect_grace_period": (None, _GUNICORN_ASGI + "; no equivalent"),
    "websocket_max_message_size": ("websocket.max_message_size", _GUNICORN_ASGI),
    "http_parser": ("http.implementation", _GUNICORN_ASGI),
    "root_path": ("server.root_path", ""),
    "dirty_apps": (None, _GUNICORN_DIRTY),
    "dirty_workers": (None, _GUNICORN_DIRTY),
    "dirty_timeout": (None, _GUNICORN_DIRTY),
    "dirty_threads": (None, _GUNICORN_DIRTY),
    "dirty_graceful_timeout": (None, _GUNICORN_DIRTY),
    "on_dirty_starting": (None, _GUNICORN_DIRTY),
    "dirty_post_fork": (None, _GUNICORN_DIRTY),
    "dirty_worker_init": (None, _GUNICORN_DIRTY),
    "dirty_worker_exit": (None, _GUNICORN_DIRTY),
    "control_socket": (None, "no control socket: signals (HUP, TTIN, TTOU, TERM), or "
                             "`supervisor_for(server)` in Python"),
    "control_socket_mode": (None, "no control socket"),
    "control_socket_disable": (None, "no control socket"),
}

# hypercorn option (argparse dest) -> (pounce "section.key" | None, note)
HYPERCORN: dict[str, tuple[str | None, str]] = {
    "help": (None, "`pounce --help`"),
    "application": ("server.app", "the positional APP, the same `module:attr`"),
    "access_log": ("logging.access_log", "deprecated in hypercorn; see `--access-logfile`"),
    "access_logfile": ("logging.access_log", "access lines go to stderr; to a file through `--log-config`"),
    "access_logformat": ("logging.access_log_format", "pounce's own fields (`%(client)s`, `%(request_line)s`…)"),
    "backlog": ("server.backlog", ""),
    "binds": ("server.host", "`-b HOST:PORT` is `--host HOST --port PORT`; `unix:PATH` is `--uds PATH`; "
                             "`fd://N` is `--fd N`; one address per server"),
    "ca_certs": ("tls.ca_certs", ""),
    "certfile": ("tls.certfile", ""),
    "cert_reqs": ("tls.cert_reqs", "`none`, `optional`, `required`, or hypercorn's 0, 1, 2"),
    "ciphers": ("tls.ciphers", ""),
    "config": (None, "`--config pounce.toml`: TOML too, with pounce's sections and keys"),
    "daemon": (None, "no daemon mode: run under systemd or a container runtime"),
    "debug": ("logging.level", "`--log-level debug`"),
    "error_log": (None, "deprecated in hypercorn; pounce logs to stderr"),
    "error_logfile": (None, "stderr; a file through `--log-config`"),
    "graceful_timeout": ("server.timeout_graceful_shutdown", "default 30 s"),
    "read_timeout": ("http.timeout_request_header", "idle connections close after `--timeout-keep-alive`; a "
                                                    "head that takes too long after `--timeout-request-header`"),
    "max_requests": ("server.max_requests", "`--limit-max-requests`"),
    "max_requests_jitter": ("server.max_requests_jitter", "`--limit-max-requests-jitter`"),
    "group": ("server.uds_permissions", "for a unix socket, its mode: `--uds-permissions 660`"),
    "worker_class": ("server.loop", "`asyncio` or `uvloop`; trio is not supported"),
    "keep_alive": ("server.timeout_keep_alive", "default 5 s"),
    "keyfile": ("tls.keyfile", ""),
    "keyfile_password": ("tls.keyfile_password", ""),
    "insecure_binds": (None, "one listener per server: run a second pounce for plain HTTP, or redirect "
                             "in the proxy"),
    "log_config": ("logging.config_file", "a dictConfig in TOML or JSON, chosen by extension"),
    "log_level": ("logging.level", ""),
    "pid": (None, "no pid file"),
    "quic_binds": ("http3.enabled", "`--http3` serves HTTP/3 on UDP at the TCP port's number (or "
                                    "`--http3-port`), with `--ssl-certfile`/`--ssl-keyfile`"),
    "reload": ("reload.enabled", ""),
    "root_path": ("server.root_path", ""),
    "server_names": (None, "no equivalent: every Host is served"),
    "statsd_host": (None, "no statsd: the pounce-prometheus contrib plugin exports request metrics"),
    "statsd_prefix": (None, "no statsd"),
    "umask": ("server.uds_permissions", "for a unix socket: `--uds-permissions`"),
    "user": (None, "start pounce as that user; `--uds-permissions` for the socket's mode"),
    "verify_mode": ("tls.cert_reqs", ""),
    "websocket_ping_interval": ("websocket.ping_interval", "on by default in pounce (20 s), `0` turns it off"),
    "workers": ("server.workers", ""),
}

# -- rendering -----------------------------------------------------------------------------


def _registry() -> Any:
    from pounce.core.plugins import build_plugin_manager

    return build_plugin_manager().registry


def _ref(option: Any, flag: str | None = None) -> str:
    """``--flag`` linked to the option's reference, and its TOML key."""
    link = f"../configuration/{option.section}.md#{option.key}"
    shown = flag or (option.cli[0] if option.cli else None)
    key = f"`[{option.section}] {option.key}`"
    return f"[`{shown}`]({link}) ({key})" if shown else f"[{key}]({link})"


def _hook(name: str) -> str:
    return f"[`{name}`](../plugins.md#the-lifecycle-hook-by-hook) (a plugin)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _flags(option: dict[str, Any]) -> str:
    shown = [f for f in option["flags"] if f.startswith("--")] or option["flags"]
    shown += option.get("negative", [])
    return " / ".join(f"`{f}`" for f in shown) if shown else "—"


def _accepted(option: Any) -> set[str]:
    values = {str(c) for c in (option.choices or ())} | {str(a) for a in option.aliases}
    return values


def render_uvicorn(data: dict[str, Any], registry: Any) -> str:
    by_flag = {flag: option for option in registry for flag in option.cli}
    by_key = {f"{o.section}.{o.key}": o for o in registry}
    lines = [
        f"Captured from uvicorn {data['version']}. A flag pounce has is spelled the same; the link goes to "
        "its reference.",
        "",
        "| uvicorn | pounce | `uvicorn.run()` → `pounce.run()` | notes |",
        "|---|---|---|---|",
    ]
    missing = []
    for entry in data["options"]:
        flag = next(f for f in entry["flags"] if f.startswith("--"))
        option = by_flag.get(flag)
        notes = []
        if option is not None:
            pounce = _ref(option, flag)
            keyword = f"`{entry['name']}=` → `{option.override_name}=`"
            refused = sorted(set(entry["choices"] or ()) - _accepted(option)) if option.choices else []
            if refused:
                notes.append("Not accepted: " + ", ".join(f"`{v}`" for v in refused) + ".")
            if flag in UVICORN_NOTES:
                notes.append(UVICORN_NOTES[flag])
        elif flag in UVICORN_MISSING:
            pounce, keyword = "—", "—"
            notes.append(UVICORN_MISSING[flag])
            if "([" in UVICORN_MISSING[flag]:
                target = re.search(r"\(\[(\w+)\] (\w+)\)", UVICORN_MISSING[flag])
                if target and f"{target.group(1)}.{target.group(2)}" in by_key:
                    pounce = _ref(by_key[f"{target.group(1)}.{target.group(2)}"])
        else:
            missing.append(flag)
            continue
        lines.append(f"| {_flags(entry)} | {pounce} | {keyword} | {_cell(' '.join(notes))} |")
    if missing:
        raise ValueError(f"uvicorn flags without a pounce option or a note: {', '.join(missing)}")
    return "\n".join(lines)


def _mapped_table(data: dict[str, Any], mapping: dict[str, tuple[str | None, str]], registry: Any,
                  tool: str, label: str) -> str:
    by_key = {f"{o.section}.{o.key}": o for o in registry}
    unknown = [e["name"] for e in data["options"] if e["name"] not in mapping]
    if unknown:
        raise ValueError(f"{tool} options without a mapping: {', '.join(unknown)}")
    gone = sorted(set(mapping) - {e["name"] for e in data["options"]})
    if gone:
        raise ValueError(f"mapped {tool} options that {tool} {data['version']} does not have: {', '.join(gone)}")
    rows, none = [], []
    for entry in data["options"]:
        target, note = mapping[entry["name"]]
        name = f"`{entry['name']}`" + (f" ({_flags(entry)})" if entry["flags"] and tool == "gunicorn" else "")
        if tool == "hypercorn":
            name = _flags(entry) if entry["flags"] else f"`{entry['name'].upper()}` (positional)"
        if target is None:
            if note.startswith("`"):
                rows.append(f"| {name} | {_cell(note)} | |")
            else:
                none.append((name, note))
            continue
        if target.startswith("hook:"):
            cell = _hook(target[5:])
        else:
            if target not in by_key:
                raise ValueError(f"{tool} {entry['name']}: no pounce option {target}")
            cell = _ref(by_key[target])
        rows.append(f"| {name} | {cell} | {_cell(note)} |")
    out = [f"Captured from {tool} {data['version']}.", "", f"| {label} | pounce | notes |", "|---|---|---|", *rows]
    if none:
        out += ["", "No equivalent in pounce, and what to do instead:", "", f"| {label} | instead |", "|---|---|"]
        out += [f"| {name} | {_cell(note)} |" for name, note in none]
    return "\n".join(out)


def render(tool: str, registry: Any = None) -> str:
    registry = registry if registry is not None else _registry()
    data = json.loads((DATA / f"{tool}.json").read_text())
    if tool == "uvicorn":
        return render_uvicorn(data, registry)
    if tool == "gunicorn":
        return _mapped_table(data, GUNICORN, registry, "gunicorn", "gunicorn setting (flag)")
    return _mapped_table(data, HYPERCORN, registry, "hypercorn", "hypercorn")


def _with_block(text: str, block: str, where: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if pattern.search(text) is None:
        raise ValueError(f"{where}: no {START} ... {END} block")
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", text, count=1)


def expected() -> dict[Path, str]:
    registry = _registry()
    return {page: _with_block(page.read_text(), render(tool, registry), str(page.relative_to(ROOT)))
            for tool, page in PAGES.items()}


def stale() -> list[str]:
    return [str(p.relative_to(ROOT)) for p, text in expected().items() if p.read_text() != text]


def write() -> list[str]:
    changed = []
    for path, text in expected().items():
        if path.read_text() != text:
            path.write_text(text)
            changed.append(str(path.relative_to(ROOT)))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--capture", nargs="+", choices=sorted(CAPTURE), metavar="TOOL",
                        help="record the options of these installed servers in scripts/migration/")
    args = parser.parse_args(argv)
    if args.capture:
        DATA.mkdir(parents=True, exist_ok=True)
        for tool in args.capture:
            data = CAPTURE[tool]()
            (DATA / f"{tool}.json").write_text(json.dumps(data, indent=1) + "\n")
            print(f"captured {len(data['options'])} options of {tool} {data['version']}")
        return 0
    for name in write():
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
