"""quizbot command line. The bot itself is not built yet (issue 5); this entry point says so plainly."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quizbot", description="Multiplayer quiz bot for XMPP rooms")
    parser.add_argument("command", nargs="?", choices=["run", "import", "check-questions"])
    args, _rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    print(f"quizbot {args.command}: not available yet — the quiz bot is still being built", file=sys.stderr)
    return 1
