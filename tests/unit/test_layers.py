"""Layers point one way: quizbot may use boshcm, boshcm never imports quizbot (nor slixmpp, the bot's library).
The quiz reaches the server only through the extension seam (boshcm/extensions.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

IMPORT_EVERY_BOSHCM_MODULE = """
import importlib, json, pkgutil, sys
import boshcm
names = [info.name for info in pkgutil.walk_packages(boshcm.__path__, "boshcm.") if not info.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
loaded = sorted(name for name in sys.modules if name.partition(".")[0] in ("quizbot", "slixmpp"))
print(json.dumps({"modules": names, "loaded": loaded}))
"""


def test_no_boshcm_module_imports_quizbot_or_slixmpp() -> None:
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERY_BOSHCM_MODULE], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"boshcm.app", "boshcm.cli", "boshcm.config", "boshcm.extensions"} <= set(report["modules"])
    assert report["loaded"] == []


def test_no_boshcm_source_names_a_quizbot_module() -> None:
    """Not even lazily, inside a function."""
    for path in sorted((ROOT / "boshcm").rglob("*.py")):
        text = path.read_text()
        assert "import quizbot" not in text and "from quizbot" not in text, path


def test_the_shared_test_fixtures_load_neither_the_application_nor_slixmpp() -> None:
    """A unit test of a pure machine pays for what it uses, not for the whole server."""
    script = ("import json, sys, tests.conftest; "
              "print(json.dumps(sorted(n for n in sys.modules if n in ('boshcm.app', 'slixmpp'))))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
