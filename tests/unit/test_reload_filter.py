"""The reload plugin's file filter: which changed paths trigger a reload
(the watcher and the processes are tests/integration/test_reload.py)."""

from __future__ import annotations

from pathlib import Path

from pounce.plugins.reload import ChangeFilter


def test_change_filter_rules(tmp_path: Path) -> None:
    rule = ChangeFilter([tmp_path], ["*.py", "templates/*.html"], [".*", "*.pyc", "__pycache__", "build"])
    yes = ["app.py", "pkg/mod.py", "templates/a.html", "a/templates/b.html"]
    no = ["a.txt", "x.html", ".venv/lib/site.py", "__pycache__/a.py", ".git/hooks/x.py", "build/gen.py",
          ".app.py.swp", "app.py~", ".#app.py", "4913", "#app.py#", "mod.pyc", ".hidden.py"]
    for rel in yes:
        assert rule(None, str(tmp_path / rel)), rel
    for rel in no:
        assert not rule(None, str(tmp_path / rel)), rel

