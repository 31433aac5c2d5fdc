#!/usr/bin/env bash
# Debian packages the test suite drives as real peers (curl, nginx, chromium,
# nghttp and h2load from nghttp2-client).
# Installs only what is missing; without root (or apt-get) it says what it
# skipped and the tests that need a missing tool skip with that reason.
set -u
packages=(curl chromium nginx systemd apache2-utils nghttp2-client)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: not root or no apt-get; missing: ${missing[*]}" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || echo "system-deps: apt-get install failed for: ${missing[*]}" >&2
exit 0
