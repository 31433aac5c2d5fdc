#!/usr/bin/env bash
# Run pounce's tests on Debian unstable's CPython (python3.14, python3.15).
#
#   scripts/sid-pythons.sh 3.14 [PYTEST ARGS...]   the suite on python3.14
#   scripts/sid-pythons.sh 3.14 --exec CMD...      any command there, in /src
#   scripts/sid-pythons.sh --prepare               only build/refresh the root
#   scripts/sid-pythons.sh 3.14 --exec true          the root and the venv, no test
#
# pyenv has no 3.14 or 3.15 here and nothing may be downloaded from
# python.org, but Debian unstable ships both as packages. This builds a
# minimal Debian unstable root with debootstrap in .cache/sid (git-ignored;
# POUNCE_SID_ROOT moves it), with the interpreters and the Debian programs
# the suite drives as real peers (the list of scripts/system-deps.sh), and
# runs pytest inside it with chroot. The chroot shares the host's network,
# so tests use the same loopback; the work tree is bind-mounted at /src.
#
# A second run takes seconds: the root is kept (a stamp records its package
# list), and so is one virtual environment per Python, named after a hash of
# the pyproject.toml files it was installed from.
#
# Needs root (chroot, mount). Mounts are made in a private mount namespace
# when unshare(1) allows it, and are unmounted by a trap in any case, so
# nothing stays mounted under .cache after the run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${POUNCE_SID_ROOT:-$repo/.cache/sid}
mirror=${POUNCE_SID_MIRROR:-http://deb.debian.org/debian}
pythons=(3.14 3.15)
# Debian packages in the root. Keep the peers in step with system-deps.sh.
peers=(curl chromium nginx systemd iproute2)
tools=(make wrk)  # test_packaging runs `make run-setup`; benchmarks/worker_modes.py needs 3.14
# A compiler and the headers, for test dependencies that have no wheel for
# a new Python yet (zstandard on 3.15) and build from source.
build=(gcc libc6-dev)
base=(ca-certificates)
for v in "${pythons[@]}"; do base+=("python$v" "python$v-venv"); done
for v in "${pythons[@]}"; do build+=("python$v-dev"); done
packages=("${base[@]}" "${peers[@]}" "${tools[@]}" "${build[@]}")

die() { echo "sid-pythons: $*" >&2; exit 2; }
say() { echo "sid-pythons: $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
[ $# -ge 1 ] || die "usage: $0 3.14|3.15 [pytest args...] | --prepare"
want=$1
shift
if [ "$want" != --prepare ]; then
  case " ${pythons[*]} " in *" $want "*) ;; *) die "no Python $want here; one of: ${pythons[*]}" ;; esac
fi

# Private mounts: if this process dies, the kernel drops them with it.
if [ -z "${POUNCE_SID_UNSHARED:-}" ] && unshare --mount --propagation private true 2>/dev/null; then
  POUNCE_SID_UNSHARED=1 exec unshare --mount --propagation private -- bash "$0" "$want" "$@"
fi

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9  # one run at a time builds the root or a venv

stamp="$root/.pounce-packages"
if [ ! -e "$stamp" ]; then
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    # Another apt-get (system-deps.sh) may hold the lock for a while.
    apt_get=(apt-get -o DPkg::Lock::Timeout=300 -y -qq)
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install debootstrap >/dev/null 2>&1 || {
      "${apt_get[@]}" update >/dev/null 2>&1
      DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install debootstrap >/dev/null
    } || die "debootstrap is missing and apt-get could not install it"
  fi
  say "building a Debian unstable root in $root (a few minutes, once)"
  rm -rf --one-file-system "$root.new"
  # Only the interpreters here: debootstrap does not resolve alternatives
  # (chromium's dbus-session-bus), apt-get below installs the peers.
  include=$(IFS=,; echo "${base[*]}")
  if ! debootstrap --variant=minbase --include="$include" sid "$root.new" "$mirror" \
      >"$root.debootstrap.log" 2>&1; then
    tail -n 20 "$root.debootstrap.log" >&2
    die "debootstrap failed (log: $root.debootstrap.log)"
  fi
  rm -rf --one-file-system "$root.new/var/cache/apt/archives/"*.deb
  printf '%s\n' "${base[@]}" >"$root.new/.pounce-packages"
  rm -rf --one-file-system "$root"
  mv "$root.new" "$root"
fi

# -- mounts, undone on any exit -------------------------------------------------
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

bind /proc "$root/proc"
bind /dev "$root/dev"
for sub in pts shm; do
  if mountpoint -q "/dev/$sub"; then bind "/dev/$sub" "$root/dev/$sub"; fi
done

# -- what pip and name resolution need, as the host has them ----------------------
for f in /etc/resolv.conf /etc/hosts; do
  [ -e "$f" ] && cp -L "$f" "$root$f"
done
ca=/etc/ssl/certs/ca-certificates.crt
[ -e "$ca" ] && cp -L "$ca" "$root$ca"
[ -e /etc/pip.conf ] && cp -L /etc/pip.conf "$root/etc/pip.conf"
if [ -d /etc/xdg/pip ]; then
  rm -rf "$root/etc/xdg/pip"; mkdir -p "$root/etc/xdg"; cp -rL /etc/xdg/pip "$root/etc/xdg/pip"
fi
if [ -d "$HOME/.config/pip" ]; then
  rm -rf "$root/root/.config/pip"; mkdir -p "$root/root/.config"
  cp -rL "$HOME/.config/pip" "$root/root/.config/pip"
fi
# Local wheel folders and file:// indexes named in the pip configuration or in
# PIP_* variables are mounted read-only at the same path (for an index at
# DIR/simple, all of DIR: its pages link to files beside it).
host_pip=$(command -v python3 || true)
pip_settings=$( { [ -n "$host_pip" ] && "$host_pip" -m pip config list 2>/dev/null; env | grep '^PIP_'; } || true)
for path in $(grep -oE "(file://)?/[^' \"]+" <<<"$pip_settings" | sed -e 's|^file://||' -e 's|/$||' -e 's|/simple$||' | sort -u); do
  if [ -d "$path" ]; then
    mountpoint -q "$root$path" || bind "$path" "$root$path" ro
  elif [ -f "$path" ]; then
    mkdir -p "$(dirname "$root$path")"; cp -L "$path" "$root$path"
  fi
done

in_root() {
  local keep=() var
  for var in $(compgen -e); do
    case $var in PIP_*|SSL_CERT_*|REQUESTS_CA_BUNDLE|CI|TERM|COLUMNS|DEBIAN_FRONTEND|PYTHONDONTWRITEBYTECODE|PYTHONUNBUFFERED) keep+=("$var=${!var}") ;; esac
  done
  env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${keep[@]}" chroot "$root" "$@"
}

# A package list grown since the root was built: install the difference.
if ! diff -q <(printf '%s\n' "${packages[@]}") "$stamp" >/dev/null; then
  # The root's apt checks the mirror's dates as the host's apt does (a
  # snapshot mirror serves Release files past their Valid-Until).
  : >"$root/etc/apt/apt.conf.d/90pounce-host"
  if command -v apt-config >/dev/null; then
    for opt in Acquire::Check-Valid-Until Acquire::Check-Date; do
      value=$(apt-config dump "$opt" | sed -n "s/^$opt \"\\(.*\\)\";\$/\\1/p")
      [ -n "$value" ] && echo "$opt \"$value\";" >>"$root/etc/apt/apt.conf.d/90pounce-host"
    done
  fi
  say "updating the root's packages"
  in_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
    || die "apt-get install in the root failed"
  printf '%s\n' "${packages[@]}" >"$stamp"
fi

[ "$want" = --prepare ] && exit 0

# -- the work tree and one venv per Python ----------------------------------------
bind "$repo" "$root/src"
# The root itself lies in the work tree: hide it (and the host's venvs) from
# anything inside that walks /src, which would otherwise find itself.
if [ -d "$root/src/.cache" ]; then
  mount -t tmpfs -o size=1m,mode=755 tmpfs "$root/src/.cache"
  mounted+=("$root/src/.cache")
fi
manifests=(pyproject.toml tests/fixtures/*/pyproject.toml plugins-contrib/*/pyproject.toml)
key=$(cd "$repo" && cat "${manifests[@]}" | sha256sum | cut -c1-12)
venvs=/var/cache/pounce-venvs
venv=$venvs/py$want-$key
if [ ! -e "$root$venv/.complete" ]; then
  say "creating $venv (python$want)"
  rm -rf --one-file-system "$root$venvs/py$want-"*
  mkdir -p "$root$venvs"
  pip="$venv/bin/python -m pip install --quiet"
  cmds="python$want -m venv $venv; $pip --upgrade pip; $pip -e '/src[test,docs]'"
  for fixture in "$repo"/tests/fixtures/*/pyproject.toml; do
    rel=${fixture#"$repo/"}; cmds+="; $pip /src/${rel%/pyproject.toml}"
  done
  for contrib in "$repo"/plugins-contrib/*/pyproject.toml; do
    rel=${contrib#"$repo/"}; cmds+="; $pip -e '/src/${rel%/pyproject.toml}[test]'"
  done
  # pip's output goes to a log, shown only when the install fails.
  if ! in_root sh -c "set -e; $cmds; touch $venv/.complete" >"$root$venv.log" 2>&1; then
    tail -n 30 "$root$venv.log" >&2
    die "installing pounce into python$want failed (log: $root$venv.log)"
  fi
fi

if [ "${1:-}" = --exec ]; then  # any command, in /src, with the venv first on PATH
  shift
  in_root sh -c 'cd /src && PATH="$0/bin:$PATH" VIRTUAL_ENV="$0" exec "$@"' "$venv" "$@"
  exit
fi

say "python$want: pytest $*"
# Deprecations are errors here, in the tests and in every Python they start
# (servers, workers): they are what breaks on the next release.
in_root sh -c 'cd /src && PYTHONWARNINGS=error::DeprecationWarning \
  exec "$0" -W error::DeprecationWarning -m pytest -p no:cacheprovider "$@"' "$venv/bin/python" "$@"
