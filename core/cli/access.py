"""`python -m core hash-password`: make the CONSOLE_PASSWORD_HASH for the console's password gate
(`core.access`), from a prompt or standard input, so the password itself is never stored."""

from __future__ import annotations

import argparse
import sys

from core.cli.base import AddCommand, emit


def cmd_hash_password(args: argparse.Namespace) -> None:
    import getpass

    from core.access import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("Console password: ")
    emit({"CONSOLE_PASSWORD_HASH": hash_password(password)}, args.json)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    hp = add("hash-password", cmd_hash_password, "make a CONSOLE_PASSWORD_HASH for the console's password gate")
    hp.add_argument("--stdin", action="store_true", help="read the password from standard input")
