"""The quiz page's ES modules as quizbot/page.py serves them: every import names its module's versioned URL, index.html
preloads each module app.js needs by that very URL, and comment lines are blanked without moving any line."""

from __future__ import annotations

import re

import pytest

from quizbot.page import WEB, build_assets, build_modules, imported_by, module_imports, without_comment_lines

SOURCES = {path.name: path.read_text(encoding="utf-8") for path in sorted(WEB.glob("*.js"))}


def test_every_import_and_preload_names_the_versioned_url_of_the_module_served() -> None:
    html, assets, _strophe = build_assets()
    page = html.body.decode()
    needed = imported_by("app.js", SOURCES)
    # Every module is used, none is left behind; the host view's module and the first visit's registration are
    # loaded on demand, never preloaded.
    assert set(needed) == set(SOURCES) - {"app.js", "host.js", "register.js"}
    assert "host.js" in module_imports(SOURCES["app.js"]) and "host.js" not in page
    assert "register.js" in module_imports(SOURCES["connection.js"]) and "register.js" not in page
    for name in needed:
        assert f'<link rel="modulepreload" href="/quiz/{name}?v={assets[name].version}">' in page
    for name in SOURCES:
        served = assets[name].body.decode()
        for imported in module_imports(SOURCES[name]):
            assert f'"./{imported}?v={assets[imported].version}"' in served
        assert not re.search(r'(from\s*|import\(\s*)"\./[^"?]+"', served)


def test_a_module_loaded_on_demand_is_versioned_but_not_preloaded() -> None:
    sources = {"app.js": 'import { a } from "./a.js";\nconst b = () => import("./b.js");\n',
               "a.js": "export const a = 1;\n", "b.js": "export const b = 2;\n"}
    built = build_modules(sources)
    assert f'import("./b.js?v={built["b.js"].version}")' in built["app.js"].body.decode()
    assert imported_by("app.js", sources) == ["a.js"]
    changed = build_modules({**sources, "b.js": "export const b = 3;\n"})
    assert changed["app.js"].version != built["app.js"].version  # a new host view is a new app.js URL too


def test_a_change_in_a_module_renames_every_module_that_imports_it() -> None:
    before = build_modules(SOURCES)
    after = build_modules({**SOURCES, "sm.js": SOURCES["sm.js"] + "\nexport const more = 1;\n"})
    assert after["sm.js"].version != before["sm.js"].version
    assert after["connection.js"].version != before["connection.js"].version  # imports sm.js
    assert after["app.js"].version != before["app.js"].version  # imports connection.js
    assert after["i18n.js"].version == before["i18n.js"].version


def test_comment_lines_are_blanked_and_lines_keep_their_numbers() -> None:
    for name, source in SOURCES.items():
        served = without_comment_lines(source)
        assert served.count("\n") == source.count("\n"), name
        # Only whole comment lines go: no module has a multi-line string or template literal a line could be part
        # of (a backtick string stays on its line).
        for line in source.split("\n"):
            assert line.count("`") % 2 == 0, (name, line)
    assert without_comment_lines('a();\n  // why\nb("//x");') == 'a();\n\nb("//x");'


def test_an_import_cycle_or_a_missing_module_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        build_modules({"a.js": 'import { b } from "./b.js";', "b.js": 'import { a } from "./a.js";'})
    with pytest.raises(ValueError, match="not in"):
        build_modules({"a.js": 'import { b } from "./b.js";'})
