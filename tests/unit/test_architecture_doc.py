"""docs/architecture.md stays true of the tree: its layout sketch names every folder, and every module it or the
machines table names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()

_MODULE = re.compile(r"(?<![\w/.-])((?:[a-z_]+/)*[a-z_]+\.py)\b")
_FOLDER = re.compile(r"(?<![\w/.-])([a-z_]+)/(?=[\s,)]|$)")


def _section(heading: str) -> str:
    start = DOC.index(f"\n## {heading}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end != -1 else len(DOC)]


def _layout_block() -> list[str]:
    section = _section("Layout")
    return section[section.index("```\n") + 4:section.index("\n```", section.index("```\n") + 4)].splitlines()


def _named_paths() -> tuple[set[Path], set[Path]]:
    """(folders, modules) the layout sketch names; a name is relative to the folder whose line it is under."""
    folders: set[Path] = set()
    modules: set[Path] = set()
    stack: list[tuple[int, Path]] = []
    for line in _layout_block():
        if not line.strip() or line.lstrip().startswith("tests/"):
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        base = stack[-1][1] if stack else ROOT
        first = line.split()[0]
        if first.endswith("/"):
            base = base / first
            folders.add(base)
            stack.append((indent, base))
            line = line.replace(first, " " * len(first), 1)
        folders.update(base / name for name in _FOLDER.findall(line))
        modules.update(base / name for name in _MODULE.findall(line))
    return folders, modules


def test_the_layout_sketch_names_every_folder_of_the_packages() -> None:
    folders, _modules = _named_paths()
    actual = {path for package in ("boshcm", "quizbot") for path in [ROOT / package, *(ROOT / package).rglob("*")]
              if path.is_dir() and path.name not in ("__pycache__", "vendor")}
    assert actual - folders == set(), "folders missing from the layout sketch in docs/architecture.md"
    assert {path for path in folders if not path.is_dir()} == set(), "the sketch names folders that do not exist"


def test_every_module_the_layout_sketch_names_exists() -> None:
    _folders, modules = _named_paths()
    assert len(modules) > 40
    assert {str(path.relative_to(ROOT)) for path in modules if not path.is_file()} == set()


def test_every_module_the_machines_table_names_exists() -> None:
    rows = [line for line in _section("Pure machines, thin adapters").splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in _MODULE.findall(row)}
    assert len(named) > 15
    missing = {name for name in named if not (ROOT / "boshcm" / name).is_file() and not (ROOT / name).is_file()}
    assert missing == set()
