"""`oncolens store verify|upgrade`: check the store's record for tampering; migrate a store to this version.

`verify` prints its report on stdout and exits 0 when the store is intact, 2 when something was changed
outside OncoLens (or the store cannot be read at all). It opens the store read-only: no write lock, no
migration."""

from __future__ import annotations

import argparse
import re

from engine.cli.common import Context

EXIT_INTACT, EXIT_TAMPERED = 0, 2


def register(sub: argparse._SubParsersAction) -> None:
    store = sub.add_parser("store", help="check the store for tampering (verify), or migrate it (upgrade)")
    store.add_argument("--db", help="database URL (default: the db_url setting or the user's SQLite file)")
    cmds = store.add_subparsers(dest="store_command", required=True, metavar="COMMAND")

    verify = cmds.add_parser("verify", help="check triggers, the audit chain, frozen study data and study images; "
                                            "exit 0 intact, 2 tampered")
    verify.add_argument("--expect", metavar="EVENT:HASH", type=_head,
                        help="the head line of an earlier report: shows a rewrite or a cut-off end of the log")
    verify.add_argument("--no-images", action="store_true",
                        help="skip reading every study case's bundle to compare its images (faster)")
    verify.set_defaults(run=run_verify)

    upgrade = cmds.add_parser("upgrade", help="migrate the store to this version's schema")
    upgrade.set_defaults(run=run_upgrade)


def _head(value: str) -> tuple[int, str]:
    match = re.fullmatch(r"(\d+):([0-9a-f]{64})", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not EVENT:HASH as a report's head line gives it "
                                         "(e.g. 57:3f2a...; 64 hex digits)")
    return int(match.group(1)), match.group(2)


def run_verify(args: argparse.Namespace, ctx: Context) -> int:
    from engine.store import Store, StoreError
    from engine.store.verify import verify_store

    try:
        with Store(args.db or None, read_only=True) as store:
            report = verify_store(store, expect=args.expect, images=not args.no_images)
    except StoreError as exc:
        print(f"OncoLens store verify: cannot check the store: {exc}")
        print("result: NOT VERIFIED")
        return EXIT_TAMPERED
    print(report.text())
    return EXIT_INTACT if report.intact else EXIT_TAMPERED


def run_upgrade(args: argparse.Namespace, ctx: Context) -> int:
    from engine.store import Store

    with Store(args.db or None) as store:
        ctx.say(f"{store.shown_url} is at schema revision {store.schema_revision()}")
    return 0
