"""quizbot command line: run (standalone, against any XMPP server) | import opentdb | check-questions."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from boshcm.database import DatabaseFault
from boshcm.toml_config import ConfigError
from quizbot import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quizbot", description="Multiplayer quiz bot for XMPP rooms")
    parser.add_argument("--version", action="version", version=f"quizbot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the bot against an XMPP server (see conf/quizbot.toml)")
    run.add_argument("--config", metavar="FILE", help="TOML configuration (conf/quizbot.toml)")
    run.add_argument("--jid", help="the bot's account (xmpp.jid)")
    run.add_argument("--password-file", metavar="FILE", help="file with the account's password (xmpp.password_file)")
    run.add_argument("--server", metavar="HOST:PORT", help="where to connect (xmpp.server)")
    run.add_argument("--rooms", metavar="ROOM,...", help="rooms to join (quizbot.rooms)")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    importer = commands.add_parser("import", help="convert a question source into a bank file")
    importer.add_argument("source", choices=["opentdb"], help="opentdb: an Open Trivia DB JSON export")
    importer.add_argument("file", type=Path)
    importer.add_argument("--language", choices=["de", "en"], default="en")
    importer.add_argument("--output", "-o", type=Path, help="bank file to write (default: standard output)")
    check = commands.add_parser("check-questions", help="validate bank files and list every fault")
    check.add_argument("files", type=Path, nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "import":
        return _import(args)
    return _check(args.files)


def _run(args: argparse.Namespace) -> int:
    from quizbot.config import load_standalone
    from quizbot.runner import run_standalone

    overrides: dict[str, Any] = {}
    for flag, dotted in (("jid", "xmpp.jid"), ("password_file", "xmpp.password_file"), ("server", "xmpp.server")):
        if getattr(args, flag) is not None:
            overrides[dotted] = getattr(args, flag)
    if args.rooms is not None:
        overrides["quizbot.rooms"] = [room.strip() for room in args.rooms.split(",") if room.strip()]
    try:
        config = load_standalone(args.config, overrides)
        Path(config.xmpp.password_file).read_text()
    except ConfigError as exc:
        print(f"quizbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"quizbot: cannot read the password file: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run_standalone(config))
    except DatabaseFault as exc:
        print(f"quizbot: {exc}", file=sys.stderr)
        return 1
    return 0


def _import(args: argparse.Namespace) -> int:
    from quizbot.questions import import_opentdb, parse_bank

    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
        bank = import_opentdb(data, language=args.language)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        print(f"quizbot: {args.file} is not an Open Trivia DB export: {exc}", file=sys.stderr)
        return 1
    faults = parse_bank(bank, where=str(args.file)).errors
    for fault in faults:
        print(f"quizbot: {fault}", file=sys.stderr)
    text = json.dumps(bank, ensure_ascii=False, indent=1)
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {len(bank['questions'])} questions to {args.output}", file=sys.stderr)
    return 1 if faults else 0


def _check(files: list[Path]) -> int:
    from quizbot.questions import load_bank

    failed = False
    for path in files:
        result = load_bank(path)
        if result.errors:
            failed = True
            print(f"{path}: refused")
            for error in result.errors:
                print(f"  {error}")
        else:
            print(f"{path}: {len(result.questions)} questions ok")
    return 1 if failed else 0
