"""The command line as an administrator uses it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest

from boshcm.cli import main
from boshcm.xmpp.accounts import AccountStore
from tests.interop.prosody import free_port


def test_adduser_passwd_deluser_users(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main(["adduser", "alice@localhost", "--password", "one", *data]) == 0
    assert main(["adduser", "bob", "--password", "two", *data]) == 0
    assert main(["adduser", "bob", "--password", "three", *data]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["passwd", "alice", "--password", "four", *data]) == 0
    capsys.readouterr()
    assert main(["users", *data]) == 0
    assert capsys.readouterr().out.split() == ["alice@localhost", "bob@localhost"]
    store = AccountStore(tmp_path / "accounts.sqlite")
    assert store.verify_password("alice", "four") and not store.verify_password("alice", "one")
    store.close()
    assert main(["deluser", "bob", *data]) == 0
    assert main(["deluser", "bob", *data]) == 1
    assert main(["adduser", "carol@example.org", "--password", "x", *data]) == 1
    assert "not on this server's domain" in capsys.readouterr().err


def test_invalid_option_stops_with_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[c2s]\nstarttls = "sometimes"\n')
    assert main(["serve", "--config", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "c2s.starttls" in error
    assert main(["check-config", "--c2s", "nonsense"]) == 2
    assert "c2s.listen" in capsys.readouterr().err


async def test_serve_starts_on_defaults_accepts_clients_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "boshcm", "serve", "--c2s", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{free_port()}",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        for _attempt in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("boshcm serve did not listen")
        writer.write(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
                     b"xmlns:stream='http://etherx.jabber.org/streams'>")
        answer = await asyncio.wait_for(reader.readuntil(b"</stream:features>"), 5)
        assert b"<starttls" in answer and b"<required/>" in answer
        writer.close()
        assert (tmp_path / "data" / "accounts.sqlite").exists()
        assert (tmp_path / "data" / "tls" / "cert.pem").exists()
        # The quiz bot starts too: its account and database are made on the first start (after the listeners open).
        for _attempt in range(100):
            if (tmp_path / "data" / "quizbot.password").exists() and (tmp_path / "data" / "quizbot.sqlite").exists():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the quiz bot did not start")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
    assert process.returncode == 0


def test_quizbot_checks_and_imports_question_banks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from quizbot.cli import main as quizbot

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"language": "en", "questions": [
        {"id": "q1", "category": "geo", "kind": "text", "question": "Capital of France?", "answer": "Paris",
         "source": "https://en.wikipedia.org/wiki/Paris"}]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"language": "en", "questions": [
        {"id": "q9", "category": "geo", "kind": "number", "question": "How far?", "answer": "far",
         "source": "https://example.org"}]}))
    assert quizbot(["check-questions", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "good.json: 1 questions ok" in out and "q9: the answer of a number question must be a number" in out

    export = tmp_path / "opentdb.json"
    export.write_text(json.dumps({"response_code": 0, "results": [
        {"type": "multiple", "difficulty": "easy", "category": "Science &amp; Nature",
         "question": "What is H&#039;s symbol?", "correct_answer": "H",
         "incorrect_answers": ["He", "Hg", "Ho"]}]}))
    converted = tmp_path / "converted.json"
    assert quizbot(["import", "opentdb", str(export), "-o", str(converted)]) == 0
    bank = json.loads(converted.read_text())
    assert bank["questions"][0]["question"] == "What is H's symbol?"
    assert bank["questions"][0]["category"] == "science & nature"
    assert quizbot(["check-questions", str(converted)]) == 0


def test_quizbot_run_refuses_a_missing_account_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from quizbot.cli import main as quizbot

    assert quizbot(["run", "--password-file", "/nonexistent"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "xmpp.jid" in error


# --- start-up storage faults: one line naming the file and what to do, exit code non-zero -----------

def _serve(data: Path, *, user: int | None = None, quizbot: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "boshcm", "serve", "--data-dir", str(data), "--c2s", "127.0.0.1:0",
               "--http", "127.0.0.1:0", *([] if quizbot else ["--no-quizbot"])]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, cwd=data.parent, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    # Log lines of listeners that were already up may precede it; the verdict is the last line.
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("boshcm: ") and "; " in line
    return line


def _first_start(data: Path) -> None:
    assert main(["adduser", "alice", "--password", "secret", "--data-dir", str(data)]) == 0
    from boshcm.xmpp.muc.service import RoomStore
    from boshcm.xmpp.storage import SqliteStore
    from quizbot.store import QuizStore

    SqliteStore(data / "server.sqlite").close()
    rooms = RoomStore(data / "rooms.sqlite")
    rooms.secret()
    rooms.close()
    QuizStore(data / "quizbot.sqlite").close()


@pytest.mark.parametrize(("name", "fault"), [("accounts.sqlite", "random"), ("server.sqlite", "truncated"),
                                             ("rooms.sqlite", "empty"), ("quizbot.sqlite", "truncated")])
def test_serve_refuses_a_damaged_or_empty_database_with_one_line(tmp_path: Path, name: str, fault: str) -> None:
    data = tmp_path / "data"
    _first_start(data)
    path = data / name
    original = path.read_bytes()
    path.write_bytes({"random": os.urandom(len(original)), "truncated": original[:len(original) // 2],
                      "empty": b""}[fault])
    line = _one_line_error(_serve(data, quizbot=name == "quizbot.sqlite"))
    assert line.startswith(f"boshcm: {path}: ")
    if fault == "empty":
        # A zero-byte rooms.sqlite must not start the server with no rooms.
        assert "empty" in line and "delete it" in line
    else:
        assert "backup" in line


def test_quizbot_run_refuses_a_damaged_store_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from quizbot.cli import main as quizbot

    store, password = tmp_path / "quizbot.sqlite", tmp_path / "password"
    store.write_bytes(os.urandom(8192))
    password.write_text("secret")
    config = tmp_path / "quizbot.toml"
    config.write_text(f'[xmpp]\njid = "quiz@localhost"\npassword_file = "{password}"\n'
                      f'[quizbot]\nstore = "{store}"\n')
    assert quizbot(["run", "--config", str(config)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"quizbot: {store}: ") and "; " in error


def test_serve_refuses_a_read_only_data_directory_with_one_line(tmp_path: Path) -> None:
    # Root ignores permissions: the server runs as nobody then, in a directory nobody may enter.
    base = Path(tempfile.mkdtemp(prefix="boshcm-ro-", dir="/tmp"))
    try:
        base.chmod(0o755)
        data = base / "data"
        _first_start(data)
        data.chmod(0o555)
        line = _one_line_error(_serve(data, user=65534 if os.geteuid() == 0 else None))
        assert line.startswith(f"boshcm: {data}: ") and "not writable" in line
    finally:
        (base / "data").chmod(0o755)
        shutil.rmtree(base)


def test_deluser_takes_the_vcard_private_storage_and_uploads_with_it(tmp_path: Path) -> None:
    from boshcm.upload import Slot, UploadStore
    from boshcm.xmpp.private_storage import SqlitePrivateStore
    from boshcm.xmpp.vcard import SqliteVCardStore

    data = tmp_path / "data"
    assert main(["adduser", "bob", "--password", "secret", "--data-dir", str(data)]) == 0
    with closing(SqliteVCardStore(data / "vcard.sqlite")) as vcards:
        vcards.put_vcard("bob", b"<vCard xmlns='vcard-temp'/>")
    with closing(SqlitePrivateStore(data / "private.sqlite")) as private:
        private.put_fragment("bob", "storage:bookmarks", b"<storage xmlns='storage:bookmarks'/>")
    (data / "upload").mkdir()
    (data / "upload" / "s1").write_bytes(b"picture")
    with closing(UploadStore(data / "upload.sqlite")) as uploads:
        uploads.add(Slot(id="s1", owner="bob@localhost", filename="a.png", size=7, content_type="image/png",
                         expires_at=2e9))
    assert main(["deluser", "bob", "--data-dir", str(data)]) == 0
    with closing(SqliteVCardStore(data / "vcard.sqlite")) as vcards:
        assert vcards.vcard("bob") is None
    with closing(SqlitePrivateStore(data / "private.sqlite")) as private:
        assert private.keys("bob") == []
    with closing(UploadStore(data / "upload.sqlite")) as uploads:
        assert list(uploads.stored()) == []
    assert not (data / "upload" / "s1").exists()
