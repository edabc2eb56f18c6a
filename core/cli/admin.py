"""`hash-password`: make the ADMIN_PASSWORD_HASH value for secrets.toml or the environment."""
from __future__ import annotations

import argparse
import getpass


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hash-password", help="print an argon2 hash to put in ADMIN_PASSWORD_HASH")
    p.add_argument("--password", help="(default: asked without echo)")
    p.set_defaults(func=cmd_hash_password)


def cmd_hash_password(args: argparse.Namespace) -> int:
    from argon2 import PasswordHasher

    password = args.password or getpass.getpass("admin password: ")
    if len(password) < 8:
        print("error: use at least 8 characters")
        return 2
    print(PasswordHasher().hash(password))
    return 0
