"""The room's parts (moderation, owner, invitations, history, ...) are functions of the room that use its public
interface only: no module of boshcm/xmpp/muc/ reaches into another object's private attributes (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import boshcm.xmpp.muc

MUC = Path(boshcm.xmpp.muc.__file__).parent


def private_reaches(source: str) -> list[str]:
    """`x._name` where `x` is not `self` or `cls`: a reach into someone else's privates."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_sees_a_reach_into_the_rooms_privates() -> None:
    assert private_reaches("def f(room):\n    return room._occupants\n") == ["2: room._occupants"]
    assert private_reaches("class A:\n    def f(self):\n        return self._occupants\n") == []


def test_no_muc_module_uses_another_objects_private_attributes() -> None:
    reaches = {path.name: found for path in sorted(MUC.glob("*.py"))
               if (found := private_reaches(path.read_text(encoding="utf-8")))}
    assert reaches == {}
