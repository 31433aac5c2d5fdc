"""Docs that are generated or promised stay true."""

from __future__ import annotations

import inspect
import re

from pounce.core import hookspecs
from pounce.core.reference import render
from tests.helpers import ROOT


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("pounce_")]


def test_config_reference_is_current() -> None:
    current = (ROOT / "docs" / "config.md").read_text()
    assert current == render(), "docs/config.md is stale: run `make docs`"


def test_every_hook_is_in_the_contract_and_has_a_docstring() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    for name in hook_names():
        assert f"`{name}(" in design, f"{name} missing from docs/design.md"
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"{name} has no docstring"


def test_every_contract_hook_is_declared() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    declared = set(hook_names())
    for name in re.findall(r"`(pounce_\w+)\(", design):
        assert name in declared, f"{name} is in docs/design.md but not in hookspecs.py"


def test_readme_opens_with_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
