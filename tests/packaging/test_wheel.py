"""The wheel as a user gets it: `python -m build` (sdist, then the wheel from the sdist), installed into a fresh
virtual environment, run from a directory that is not the repository. The quiz page, its script, Strophe.js and
the shipped question banks must come from the installed package, and the bot must join its room.

Built once per module, as `python -m build` does it but in one isolated build environment for both steps (the
build requirements installed once). The fresh environment is made without pip and filled by this venv's pip: the
wheel's dependencies, resolved from the wheel's own metadata, come from a directory that `pip download` filled
(from pip's cache and the configured package indexes) while the wheel was being built."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from build import ProjectBuilder
from build.env import DefaultIsolatedEnv
from pyproject_hooks import quiet_subprocess_runner

import boshcm
from tests.integration.bosh_client import BoshClient
from tests.integration.nodes import wait_for_port
from tests.interop.prosody import free_port

ROOT = Path(__file__).parents[2]
SOURCES = ("pyproject.toml", "README.md", "boshcm", "quizbot")
ROOM = "quiz@conference.localhost"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ directory of a fresh venv with the freshly built wheel installed."""
    vendored = ROOT / "quizbot" / "web" / "vendor" / "strophe.umd.min.js"
    assert vendored.exists(), "Strophe.js is not in quizbot/web/vendor/: run scripts/setup.sh before building"
    work = tmp_path_factory.mktemp("wheel")
    # While the wheel builds: its dependencies as pyproject.toml names them, fetched into a directory of their
    # own. The install below resolves the wheel's metadata against that directory only (--no-index), so a
    # dependency the wheel names but nobody fetched fails the install, as a missing one fails the smoke tests.
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    fetching = subprocess.Popen(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-input", "--dest", str(work / "deps"),
         *requirements], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        source = work / "source"  # a copy, so that building leaves nothing (egg-info, build/) in the repository
        source.mkdir()
        for name in SOURCES:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / name, source / name)
        wheel = _build_via_sdist(source, work / "dist")
        assert list((work / "dist").glob("boshcm-*.tar.gz")), "no sdist"
        fetched, _ = fetching.communicate(timeout=120)
    finally:
        if fetching.poll() is None:
            fetching.kill()
            fetching.wait()
    assert fetching.returncode == 0, f"pip download failed:\n{fetched}"
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    # --no-compile: the few modules a test imports are compiled when imported, not all of every dependency.
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-input",
          "--no-compile", "--no-index", "--find-links", str(work / "deps"), str(wheel)])
    yield venv / "bin"


def _build_via_sdist(source: Path, dist: Path) -> Path:
    """What `python -m build` does (the sdist from the sources, then the wheel from the extracted sdist, each in
    an isolated environment with the build requirements the backend asks for), with one environment for both
    steps: setuptools is fetched and installed once. Returns the wheel."""
    with DefaultIsolatedEnv() as env:
        builder = ProjectBuilder.from_isolated_env(env, source, runner=quiet_subprocess_runner)
        env.install(builder.build_system_requires)
        env.install(builder.get_requires_for_build("sdist"))
        sdist = builder.build("sdist", dist)
        extracted = dist.parent / "sdist"
        with tarfile.open(sdist) as archive:
            archive.extractall(extracted, filter="data")
        (top,) = extracted.iterdir()
        builder = ProjectBuilder.from_isolated_env(env, top, runner=quiet_subprocess_runner)
        env.install(builder.build_system_requires)  # already there, as the sdist had them
        env.install(builder.get_requires_for_build("wheel"))
        return Path(builder.build("wheel", dist))


def _run(command: list[str], *, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=cwd, env=env)
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
async def serving(installed: Path, tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """`boshcm serve` from the fresh venv, with the quiz bot, in an empty directory; yields the HTTP port."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([str(installed / "boshcm"), "adduser", "alice", "--password", "alice-secret"], cwd=tmp_path, env=env)
    (tmp_path / "boshcm.toml").write_text('[quizbot]\nadmins = ["alice@localhost"]\n')
    http = free_port()
    process = await asyncio.create_subprocess_exec(
        str(installed / "boshcm"), "serve", "--config", "boshcm.toml", "--c2s", f"127.0.0.1:{free_port()}",
        "--http", f"127.0.0.1:{http}", cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        # Generous: the fresh venv's first start compiles what it imports, slow on a starved machine.
        await wait_for_port(http, timeout_seconds=60.0)
        yield http, tmp_path
    finally:
        process.terminate()
        _out, errors = await asyncio.wait_for(process.communicate(), 10)
        assert process.returncode == 0, errors.decode()
        assert b"Traceback" not in errors, errors.decode()


def test_the_installed_command_reports_its_version(installed: Path) -> None:
    result = _run([str(installed / "boshcm"), "--version"], cwd=installed)
    assert result.stdout.strip() == f"boshcm {boshcm.__version__}"
    result = _run([str(installed / "quizbot"), "--version"], cwd=installed)
    assert result.stdout.strip() == f"quizbot {boshcm.__version__}"


async def test_the_installed_wheel_serves_the_page_its_scripts_and_the_bot_joins(
        serving: tuple[int, Path]) -> None:
    port, _directory = serving
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as reply:
            assert reply.status == 200
            page = await reply.text()
        # Everything the page loads, as the page names it.
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', page)
        assert any("strophe" in asset for asset in assets) and "/quiz/app.js" in assets, assets
        for asset in [*assets, "/quiz/config.json"]:
            async with http.get(f"{base}{asset}") as reply:
                assert reply.status == 200, asset
                assert len(await reply.read()) > 100, asset
        bosh = BoshClient(http, f"{base}/http-bind")
        try:
            await bosh.login("alice", "alice-secret")
            bosh.start_polling()
            # The bot makes the public room when it joins; then a joiner sees the bot in it.
            for attempt in range(100):
                await bosh.send(f"<iq xmlns='jabber:client' type='get' id='items{attempt}' to='conference.localhost'>"
                                "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
                items = await bosh.next("iq", id=f"items{attempt}")
                if ROOM in [item.get("jid") for item in items.iter("{*}item")]:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the quiz bot did not make its room")
            await bosh.send(f"<presence xmlns='jabber:client' to='{ROOM}/Tester'>"
                            "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
            await bosh.next("presence", **{"from": f"{ROOM}/Quizbot"})
            # The shipped question banks were found in the installed package.
            await bosh.send("<message xmlns='jabber:client' type='chat' to='quiz@localhost'>"
                            "<body>!admin banks</body></message>")
            report = await bosh.next("message", **{"from": "quiz@localhost/bot"})
            assert re.search(r"en\.json: \d{3} questions", report.findtext("{*}body") or ""), report
        finally:
            await bosh.close()
