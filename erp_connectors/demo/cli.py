"""The demo ERP's command line: `dump` prints an agency's demo debts as JSON Lines, `serve` serves them over HTTP.

python -m erp_connectors.demo dump --agency eastcoast --as-of 2026-03-01
python -m erp_connectors.demo serve --agency eastcoast --port 8081 [--debtors N] [--token T]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date

from erp_connectors.base import DebtRecord, RecordError, record_to_dict
from erp_connectors.demo.connector import DemoERP
from erp_connectors.demo.data import DEMO_AGENCIES
from erp_connectors.demo.server import DemoERPServer


def _record_line(item: DebtRecord | RecordError) -> str:
    if isinstance(item, RecordError):
        return json.dumps({"error": item.reason, "raw": item.raw}, ensure_ascii=False, default=str)
    return json.dumps(record_to_dict(item), ensure_ascii=False)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-31.") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: `dump` prints an agency's demo debts as JSON Lines, `serve` serves them over HTTP."""
    parser = argparse.ArgumentParser(prog="python -m erp_connectors.demo", description="The Civic Pay demo ERP.")
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="print an agency's demo debts as JSON Lines")
    serve = commands.add_parser("serve", help="serve an agency's demo ERP over HTTP on a loopback address")
    for command in (dump, serve):
        command.add_argument("--agency", required=True, choices=[profile.code for profile in DEMO_AGENCIES])
        command.add_argument("--seed", type=int, default=2026)
        command.add_argument("--debtors", type=int, default=25)
        command.add_argument(
            "--as-of", type=_iso_date, default=None, help="YYYY-MM-DD; today in the agency if left out"
        )
        command.add_argument("--state-file", default=None, help="JSON file of acknowledged payments, for all processes")
    serve.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8081, help="0 lets the system choose (default 8081)")
    serve.add_argument("--token", default=None, help="require this bearer token")
    serve.add_argument("--page-size", type=int, default=100, help="debts per page unless the client asks (100)")
    arguments = parser.parse_args(argv)
    if arguments.command == "serve":
        return _serve(arguments, serve)

    try:
        connector = DemoERP(
            arguments.agency,
            seed=arguments.seed,
            debtors=arguments.debtors,
            as_of=arguments.as_of,
            state_file=arguments.state_file,
        )
    except ValueError as error:
        dump.error(str(error))
    if isinstance(sys.stdout, io.TextIOWrapper):
        # JSON Lines are UTF-8 whatever the console's code page; the Greek text must not be mangled.
        sys.stdout.reconfigure(encoding="utf-8")
    try:
        for item in connector.iter_debts():
            sys.stdout.write(_record_line(item) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (e.g. `head`) has had enough; point stdout at devnull so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def _serve(arguments: argparse.Namespace, command: argparse.ArgumentParser) -> int:
    try:
        server = DemoERPServer(
            arguments.agency,
            host=arguments.host,
            port=arguments.port,
            debtors=arguments.debtors,
            seed=arguments.seed,
            token=arguments.token,
            page_size=arguments.page_size,
            as_of=arguments.as_of,
            state_file=arguments.state_file,
        )
    except ValueError as error:
        command.error(str(error))
    except OSError as error:
        print(f"The demo ERP cannot listen on {arguments.host}:{arguments.port}: {error.strerror}.", file=sys.stderr)
        return 1
    # Indexed in the background, so the first debtor look-up of a big data set does not wait for a full walk.
    threading.Thread(target=server.erp.warm_up, name="demo-erp-warm-up", daemon=True).start()
    print(f"Demo ERP of {arguments.agency} serving at {server.url} (Ctrl+C to stop)", flush=True)
    # SIGTERM (a supervisor, or a test's terminate()) ends it as cleanly as Ctrl+C does.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _exit_on_signal(signal_number: int, frame: object) -> None:
    raise SystemExit(0)
