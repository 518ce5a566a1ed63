"""The command line as an administrator uses it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
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
        # The quiz bot starts too: its account and database are made on the first start.
        assert (tmp_path / "data" / "quizbot.password").exists()
        for _attempt in range(100):
            if (tmp_path / "data" / "quizbot.sqlite").exists():
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
