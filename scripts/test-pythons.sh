#!/usr/bin/env bash
# The test suite on every supported Python but the default one (`make test`
# runs that: python3, 3.11 here). `make test-pythons`; CI runs it after
# `make test`.
#
#   3.10 3.12 3.13   pyenv's builds, in venvs under .cache/venvs   fast subset
#   3.14             Debian unstable's, scripts/sid-pythons.sh       whole suite
#   3.15             Debian unstable's, scripts/sid-pythons.sh       fast subset
#
# The fast subset is `-m "not slow or packaging"`: every test not marked
# slow, plus the packaging tests (the sdist and wheel install and run on
# every version). On 3.14 and 3.15 deprecation warnings are errors.
#
# `--prepare` only builds what the runs need (the Debian root, every venv),
# one after the other (pip builds the local packages in their source trees),
# and runs no test: CI does that in the background while `make test` runs.
#
# POUNCE_PYTHONS="3.12 3.14" picks versions. A version whose interpreter is
# missing fails the run under CI (CI=true) and is skipped, with a line saying
# so, elsewhere. Each venv is kept and named after a hash of the
# pyproject.toml files it was installed from, so a second run only tests.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
versions=(${POUNCE_PYTHONS:-3.10 3.12 3.13 3.14 3.15})
fast=(-m "not slow or packaging")
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}

manifests=(pyproject.toml tests/fixtures/*/pyproject.toml plugins-contrib/*/pyproject.toml)
key=$(cat "${manifests[@]}" | sha256sum | cut -c1-12)

pyenv_python() {  # the newest pyenv build of $1, e.g. 3.12 -> .../3.12.1/bin/python3.12
  local found
  found=$(ls -d "$pyenv_root"/versions/"$1".*/bin/python"$1" 2>/dev/null | sort -V | tail -n 1)
  [ -n "$found" ] && [ -x "$found" ] && echo "$found"
}

host_venv() {  # host_venv PYTHON VERSION -> path of a venv with pounce[test] installed
  local python=$1 version=$2 venv=$repo/.cache/venvs/py$2-$key pip
  if [ ! -e "$venv/.complete" ]; then
    echo "test-pythons: creating $venv" >&2
    rm -rf "$repo/.cache/venvs/py$version-"*
    mkdir -p "$repo/.cache/venvs"
    pip="$venv/bin/python -m pip install --quiet"
    # pip's output goes to a log, shown only when the install fails.
    if ! ( "$python" -m venv "$venv" && $pip --upgrade pip && $pip -e ".[test,docs]" &&
           for dir in tests/fixtures/*/; do $pip "./$dir" || exit 1; done &&
           for dir in plugins-contrib/*/; do $pip -e "./${dir%/}[test]" || exit 1; done ) >"$venv.log" 2>&1; then
      tail -n 30 "$venv.log" >&2
      return 1
    fi
    touch "$venv/.complete"
  fi
  echo "$venv"
}

if [ "${1:-}" = --prepare ]; then
  sid=() host=()
  for version in "${versions[@]}"; do
    case $version in 3.14|3.15) sid+=("$version") ;; *) host+=("$version") ;; esac
  done
  status=0
  for version in "${host[@]}"; do
    python=$(pyenv_python "$version") || continue  # the run itself reports it
    host_venv "$python" "$version" >/dev/null || status=1
  done
  for version in "${sid[@]}"; do
    bash scripts/sid-pythons.sh "$version" --exec true || status=1
  done
  exit $status
fi

results=()
failed=0
for version in "${versions[@]}"; do
  started=$(date +%s)
  case $version in
    3.14) what="whole suite"; args=() ;;
    *) what="fast subset"; args=("${fast[@]}") ;;
  esac
  echo "test-pythons: Python $version, $what" >&2
  case $version in
    3.14|3.15)
      bash scripts/sid-pythons.sh "$version" -q "${args[@]}"
      status=$?
      ;;
    *)
      python=$(pyenv_python "$version")
      if [ -z "$python" ]; then
        if [ "${CI:-}" = true ]; then
          echo "test-pythons: no Python $version under $pyenv_root/versions" >&2
          status=1
        else
          echo "test-pythons: no Python $version under $pyenv_root/versions: skipped" >&2
          results+=("$version: skipped (no interpreter)")
          continue
        fi
      elif venv=$(host_venv "$python" "$version"); then
        "$venv/bin/python" -m pytest -q -p no:cacheprovider "${args[@]}"
        status=$?
      else
        echo "test-pythons: could not install pounce into Python $version" >&2
        status=1
      fi
      ;;
  esac
  took=$(( $(date +%s) - started ))
  if [ "$status" = 0 ]; then
    results+=("$version: $what passed (${took}s)")
  else
    results+=("$version: $what FAILED, exit $status (${took}s)")
    failed=1
  fi
done

echo "test-pythons:" >&2
printf '  %s\n' "${results[@]}" >&2
exit $failed
