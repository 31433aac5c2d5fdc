"""Rewrite every generated part of the documentation (``make docs`` runs it).

- docs/configuration/: one page per option section, the overview's table of
  sections and their nav lines in mkdocs.yml (pounce.core.reference);
- docs/migrating/: the flag-by-flag tables (scripts/docs_migration.py);
- the benchmark blocks of docs/performance.md and README.md, from the
  published run in docs/assets/bench/ (benchmarks/publish.py).

``--check`` changes nothing and exits 1 when something is stale; the docs
tests run the same checks.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load(path: Path) -> ModuleType:
    """A module from a file that is not on sys.path (benchmarks/, scripts/)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def generators() -> dict[str, ModuleType]:
    from pounce.core import reference

    return {
        "configuration": reference,
        "migration": load(ROOT / "scripts" / "docs_migration.py"),
        "benchmarks": load(ROOT / "benchmarks" / "publish.py"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="report stale files, change nothing")
    args = parser.parse_args(argv)
    mods = generators()
    if args.check:
        stale = mods["configuration"].stale_files() + mods["migration"].stale() + mods["benchmarks"].stale()
        for name in stale:
            print(f"stale: {name} (make docs)", file=sys.stderr)
        return 1 if stale else 0
    changed = mods["configuration"].write() + mods["migration"].write() + mods["benchmarks"].render_all()
    for name in changed:
        print(f"docs: wrote {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
