"""The command line: python -m core ingest | sync-channel | search | serve | …"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from core.cli import COMMANDS
from core.config import ConfigError


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for argv: only its command's module when argv names one, else every command
    (for --help, a typo or no command at all)."""
    parser = argparse.ArgumentParser(prog="python -m core", description="Chaffee Search command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)
    named = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    modules = [COMMANDS[named]] if named in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
