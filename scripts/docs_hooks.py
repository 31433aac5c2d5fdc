"""MkDocs hook (mkdocs.yml ``hooks:``): links to repository files work in
the built site as they do on a forge.

The pages link to files outside docs/ — source files
(``../pounce/core/hookspecs.py``), the deployment configs under deploy/,
the contrib plugins' READMEs. MkDocs only knows docs/, so on its own it would
call every such link broken. This hook publishes each linked repository file
under ``_repo/`` in the site (Markdown files become pages, not in the nav,
and their own links are followed the same way), and rewrites the links to
point there. The repository's README.md is the site's home page.

A link whose target does not exist is left alone, so ``mkdocs build
--strict`` still fails on it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parent.parent
MIRROR = "_repo"
NEVER = {".git", ".venv", "site", "node_modules", "__pycache__"}

_FENCE = re.compile(r"^([`~]{3,})[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)
_INLINE = re.compile(r"(!?\[[^\]\n]*\]\()(<[^>\n]+>|[^)\s]+)((?:\s+\"[^\"\n]*\")?\))")
_REFDEF = re.compile(r"^( {0,3}\[[^\]\n]+\]:[ \t]*)(\S+)", re.M)

# abs path of a mirrored file -> its path below docs/ in the site
_mirrored: dict[Path, str] = {}


def _split(target: str) -> tuple[str, str]:
    """(path, "#fragment" or "?query..." rest)."""
    for i, char in enumerate(target):
        if char in "#?":
            return target[:i], target[i:]
    return target, ""


def _is_local(path: str) -> bool:
    return bool(path) and "://" not in path and not path.startswith(("/", "mailto:", "data:"))


def _resolve(page_file: Path, path: str) -> Path | None:
    """The repository file a relative link points at, or None."""
    target = Path(posixpath.normpath(str(page_file.parent / unquote(path.strip("<>")))))
    if target.is_dir() and (target / "README.md").is_file():
        target = target / "README.md"
    if not target.is_file():
        return None
    try:
        rel = target.relative_to(ROOT)
    except ValueError:
        return None
    if NEVER & set(rel.parts):
        return None
    return target


def _site_path(target: Path, docs_dir: Path) -> str | None:
    """Where a repository file is in the site's tree (relative to docs/)."""
    if target == ROOT / "README.md":
        return "index.md"
    try:
        return target.relative_to(docs_dir).as_posix()
    except ValueError:
        return _mirrored.get(target)


def _outside_links(markdown: str, page_file: Path, docs_dir: Path) -> list[Path]:
    text = _FENCE.sub("", markdown)
    found = []
    for target in [m.group(2) for m in _INLINE.finditer(text)] + [m.group(2) for m in _REFDEF.finditer(text)]:
        path, _ = _split(target)
        if not _is_local(path):
            continue
        resolved = _resolve(page_file, path)
        if resolved is not None and docs_dir not in resolved.parents and resolved != ROOT / "README.md":
            found.append(resolved)
    return found


def on_files(files: Files, config: Any) -> Files:
    docs_dir = Path(config["docs_dir"]).resolve()
    _mirrored.clear()
    queue = [Path(f.abs_src_path) for f in files.documentation_pages() if f.abs_src_path]
    seen: set[Path] = set(queue)
    while queue:
        page = queue.pop()
        for target in _outside_links(page.read_text(encoding="utf-8"), page, docs_dir):
            if target in seen:
                continue
            seen.add(target)
            src_uri = f"{MIRROR}/{target.relative_to(ROOT).as_posix()}"
            _mirrored[target] = src_uri
            files.append(File.generated(config, src_uri, abs_src_path=str(target),
                                        inclusion=InclusionLevel.NOT_IN_NAV))
            if target.suffix == ".md":
                queue.append(target)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    if not page.file.abs_src_path:
        return markdown
    page_file = Path(page.file.abs_src_path)
    here = posixpath.dirname(page.file.src_uri)

    def rewrite(target: str) -> str:
        path, rest = _split(target)
        if not _is_local(path):
            return target
        resolved = _resolve(page_file, path)
        if resolved is None:
            return target  # missing: MkDocs reports it
        site_path = _site_path(resolved, docs_dir)
        if site_path is None:
            return target
        return posixpath.relpath(site_path, here or ".") + rest

    def inline(match: re.Match[str]) -> str:
        return match.group(1) + rewrite(match.group(2)) + match.group(3)

    def refdef(match: re.Match[str]) -> str:
        return match.group(1) + rewrite(match.group(2))

    out = []
    last = 0
    for fence in _FENCE.finditer(markdown):
        prose = markdown[last:fence.start()]
        out.append(_REFDEF.sub(refdef, _INLINE.sub(inline, prose)))
        out.append(fence.group(0))
        last = fence.end()
    out.append(_REFDEF.sub(refdef, _INLINE.sub(inline, markdown[last:])))
    return "".join(out)
