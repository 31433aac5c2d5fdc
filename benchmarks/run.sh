#!/usr/bin/env bash
# One command for the whole benchmark on a fresh machine:
#   bash benchmarks/run.sh [bench.py options]     (or: make bench)
#   bash benchmarks/run.sh --files [files_bench.py options]   (static files, compression)
#   bash benchmarks/run.sh --h2 [h2_bench.py options]         (HTTP/2 with h2load)
#   bash benchmarks/run.sh --h3 [h3_bench.py options]         (HTTP/3 against hypercorn)
# Builds benchmarks/.venv (pounce from this checkout, uvicorn with httptools
# and uvloop, zttp (uvicorn's HTTP/2), granian, hypercorn, starlette, matplotlib, py-spy), installs
# wrk with apt-get when it is missing, raises the open-file limit for the
# 10,000-connection scenario, then runs bench.py. Results land in benchmarks/results/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "bench: creating $venv" >&2
  if ! "$python" -m venv "$venv"; then
    # Debian's python3 needs its venv package for ensurepip.
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv
    "$python" -m venv "$venv"
  fi
fi
stamp="$venv/.bench-stamp"
want="$(cat "$repo/pyproject.toml" "$0" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bench: installing pounce, uvicorn[standard], starlette, granian, hypercorn[h3], matplotlib, py-spy into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$repo[zstd,brotli,http3]" "uvicorn[standard]" httptools uvloop wsproto \
    websockets matplotlib py-spy starlette granian "hypercorn[h3]" trustme zttp
  echo "$want" > "$stamp"
fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends wrk
fi

# The idle scenario holds 10,000 connections: client and server each need
# that many descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10240 ]; then
  echo "bench: open-file limit is $(ulimit -n); the 10k idle scenario needs more (use --idle-conns)" >&2
fi

if [ "${1:-}" = "--h2" ] && ! command -v h2load >/dev/null 2>&1; then
  echo "bench: installing h2load (nghttp2-client)" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nghttp2-client
fi

cd "$here"
if [ "${1:-}" = "--h2" ]; then
  shift
  exec "$venv/bin/python" "$here/h2_bench.py" "$@"
fi
if [ "${1:-}" = "--files" ]; then
  shift
  exec "$venv/bin/python" "$here/files_bench.py" "$@"
fi
if [ "${1:-}" = "--h3" ]; then
  shift
  exec "$venv/bin/python" "$here/h3_bench.py" "$@"
fi
exec "$venv/bin/python" "$here/bench.py" "$@"
