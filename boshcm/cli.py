"""Command line: serve | adduser | passwd | deluser | users | check-config; --version.

Installed extensions (boshcm/extensions.py) are found through their entry points: each gets a
`--no-<name>` switch on serve (`<name>.enabled = false`), and its section is validated with the rest."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from typing import Any

from boshcm import __version__
from boshcm.config import Config, ConfigError, load_config, parse_host_port
from boshcm.database import DatabaseFault, StorageError
from boshcm.extensions import installed_names
from boshcm.jid import JID, InvalidJID
from boshcm.xmpp.accounts import AccountExists, NoSuchAccount


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML configuration file (see conf/boshcm.toml)")
    common.add_argument("--data-dir", metavar="DIR", help="accounts, TLS certificate and stores (server.data_dir)")
    common.add_argument("--domain", help="the XMPP domain served (server.domain)")

    parser = argparse.ArgumentParser(prog="boshcm", description="BOSH/XMPP connection manager and XMPP server")
    parser.add_argument("--version", action="version", version=f"boshcm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the server")
    serve.add_argument("--c2s", metavar="HOST:PORT", help="client-to-server TCP listener (c2s.listen)")
    serve.add_argument("--http", metavar="HOST:PORT", help="BOSH/WebSocket HTTP listener (http.listen)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log.level")
    serve.add_argument("--upstream", metavar="HOST:PORT", action="append",
                       help="off-board: relay BOSH and WebSocket sessions to this XMPP server; repeat it or give a "
                            "comma-separated list for a cluster's nodes (upstream.server)")
    for name in installed_names():
        serve.add_argument(f"--no-{name}", action="append_const", const=name, dest="without",
                           help=f"do not start the {name} extension ({name}.enabled)")

    check = commands.add_parser("check-config", parents=[common], help="validate the configuration and exit")
    check.add_argument("--c2s", metavar="HOST:PORT")
    check.add_argument("--http", metavar="HOST:PORT")
    check.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    check.add_argument("--upstream", metavar="HOST:PORT", action="append")

    for name, text in (("adduser", "create an account"), ("passwd", "change an account's password")):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("jid", help="user@domain or just user")
        command.add_argument("--password", help="the password (prompted for when omitted)")
    deluser = commands.add_parser("deluser", parents=[common], help="delete an account and its data")
    deluser.add_argument("jid")
    commands.add_parser("users", parents=[common], help="list accounts")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    mapping = {"data_dir": "server.data_dir", "domain": "server.domain", "c2s": "c2s.listen",
               "http": "http.listen", "log_level": "log.level", "upstream": "upstream.server"}
    overrides = {dotted: getattr(args, name) for name, dotted in mapping.items()
                 if getattr(args, name, None) is not None}
    if "upstream.server" in overrides:
        overrides["upstream.server"] = [server.strip() for value in overrides["upstream.server"]
                                        for server in value.split(",") if server.strip()]
    for name in getattr(args, "without", None) or []:
        overrides[f"{name}.enabled"] = False
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config, _overrides(args))
        if args.command in ("serve", "check-config"):
            parse_host_port(config.c2s.listen, "c2s.listen")
    except ConfigError as exc:
        print(f"boshcm: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "check-config":
        print("configuration ok")
        return 0
    if args.command == "serve":
        from boshcm.app import run_server

        try:
            run_server(config)
        except ConfigError as exc:  # found only when starting, e.g. an unreadable cluster.secret_file
            print(f"boshcm: configuration error: {exc}", file=sys.stderr)
            return 2
        except DatabaseFault as exc:
            print(f"boshcm: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"boshcm: {_os_error(exc)}", file=sys.stderr)
            return 1
        return 0
    try:
        return _account_command(args, config)
    except DatabaseFault as exc:
        print(f"boshcm: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"boshcm: {config.data_path}: cannot write ({exc}); free some space or make it writable",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"boshcm: {_os_error(exc)}", file=sys.stderr)
        return 1


def _os_error(exc: OSError) -> str:
    """One line: the file named first when there is one (e.g. a data directory that cannot be made)."""
    if exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}; check that the path exists and is writable"
    return f"cannot start: {exc}"


def _account_command(args: argparse.Namespace, config: Config) -> int:
    from boshcm.app import open_accounts

    accounts = open_accounts(config)
    try:
        if args.command == "users":
            for username in accounts.usernames():
                print(f"{username}@{config.server.domain}")
            return 0
        username = _username(args.jid, config.server.domain)
        if args.command == "deluser":
            accounts.remove(username)
            from boshcm.app import delete_user_data

            delete_user_data(config, username)
            print(f"deleted {username}@{config.server.domain}")
            return 0
        password = args.password if args.password is not None else _prompt_password()
        if args.command == "adduser":
            accounts.add(username, password)
            print(f"created {username}@{config.server.domain}")
        else:
            accounts.set_password(username, password)
            print(f"password changed for {username}@{config.server.domain}")
        return 0
    except (ValueError, AccountExists, NoSuchAccount) as exc:
        print(f"boshcm: {exc}", file=sys.stderr)
        return 1
    finally:
        accounts.close()


def _username(text: str, domain: str) -> str:
    try:
        jid = JID.parse(text if "@" in text else f"{text}@{domain}")
    except InvalidJID as exc:
        raise ValueError(f"invalid JID {text!r}: {exc}") from exc
    if jid.local is None or jid.resource is not None:
        raise ValueError(f"expected user@{domain}, got {text!r}")
    if jid.domain != domain:
        raise ValueError(f"{text} is not on this server's domain {domain}")
    return jid.local


def _prompt_password() -> str:
    if not sys.stdin.isatty():
        # Scripts pipe the password in: one line.
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise ValueError("passwords do not match")
    return first
