"""`cds-service` command line: `serve` runs the service with uvicorn; `migrate` applies the
database migrations; `fire` sends one hook request for a patient on a FHIR server; `seed` loads
the fixture scenarios into a FHIR server.
The tools live in cds_service/tools/; this module only parses arguments."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

# Connection limits passed to uvicorn (the Dockerfile runs `cds-service serve` to get them).
# - request heads: each must be complete within CDS_HTTP_HEAD_TIMEOUT_SECONDS (http_protocol.py);
#   uvicorn alone never closes a connection whose head is still arriving (slowloris).
# - keep-alive timeout: an idle connection is closed this many seconds after its last answer.
# - limit_concurrency: more open connections (or running requests) than this per worker get an
#   immediate 503 instead of queueing without bound; it counts idle and half-sent connections too.
# - h11 with max_incomplete_event_size: a request head larger than this is refused (400) instead
#   of buffered; httptools has no such cap (a 1 MB header is held in memory).
KEEP_ALIVE_SECONDS = 5
LIMIT_CONCURRENCY = 200
MAX_HEADER_BYTES = 16 * 1024


def uvicorn_limits(args: argparse.Namespace) -> dict[str, object]:
    """The connection limits `serve` gives uvicorn."""
    from cds_service.http_protocol import HeadTimeoutH11Protocol

    return {
        "http": HeadTimeoutH11Protocol,
        "timeout_keep_alive": args.timeout_keep_alive,
        "limit_concurrency": args.limit_concurrency,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cds_service.logging_setup import uvicorn_log_config
    from cds_service.main import create_app
    from cds_service.metrics import prepare_for_workers
    from cds_service.settings_check import SettingsError, log_settings_warnings
    from cds_service.startup import Served, log_start, prepare_to_serve

    served = Served(args.host, args.port, args.workers)
    try:
        # Everything that can be wrong with the settings or the database fails here, in this
        # process: with --workers N, a worker that fails is restarted forever by uvicorn.
        ready = prepare_to_serve(served)
    except SettingsError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": uvicorn_log_config(args.log_level),
        "access_log": False,
        **uvicorn_limits(args),
    }
    if args.workers > 1:
        # Each worker builds its own app from the same, already checked, settings.
        log_settings_warnings(ready.settings)
        log_start(ready, served)
        # Before any worker starts: the directory where the workers' metrics add up.
        prepare_for_workers(args.workers)
        uvicorn.run("cds_service.main:app", workers=args.workers, **options)
        return 0
    app = create_app(ready.settings)
    log_start(ready, served)
    uvicorn.run(app, **options)
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from cds_service.tools import migrate

    return migrate.run(sys.stdout, sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cds-service", description="Low back pain CDS Hooks service"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--timeout-keep-alive",
        type=int,
        default=KEEP_ALIVE_SECONDS,
        metavar="S",
        help=f"close an idle keep-alive connection after S seconds (default {KEEP_ALIVE_SECONDS})",
    )
    serve.add_argument(
        "--limit-concurrency",
        type=int,
        default=LIMIT_CONCURRENCY,
        metavar="N",
        help="answer 503 once N connections or requests are open, per worker "
        f"(default {LIMIT_CONCURRENCY})",
    )
    serve.set_defaults(func=_serve)
    migrate = sub.add_parser(
        "migrate",
        help="apply the database migrations to CDS_DATABASE_URL and exit",
        description="Apply the missing schema migrations (under a database-wide lock) and exit: "
        "for a Kubernetes Job or init step. Exit codes: 0 done or up to date; 1 the database "
        "cannot be reached; 2 a setting is missing or malformed.",
    )
    migrate.set_defaults(func=_migrate)
    _add_fire(sub)
    _add_seed(sub)
    return parser


def _fire(args: argparse.Namespace) -> int:
    from cds_service.tools import fire

    options = fire.FireOptions(
        fhir_server=args.fhir_server,
        patient_id=args.patient,
        hook=args.hook,
        order_files=tuple(args.order),
        token=args.token,
        service_url=args.service_url,
        user_id=args.user_id,
        encounter_id=args.encounter,
        as_json=args.json,
    )
    return fire.run(
        options,
        sys.stdout,
        sys.stderr,
        today=date.today(),
        env_log_level="CDS_LOG_LEVEL" in os.environ,
    )


def _add_fire(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cds_service.tools.fire import DEFAULT_USER_ID, HOOKS

    fire = sub.add_parser(
        "fire",
        help="send one CDS Hooks request for a patient on a FHIR server and print the cards",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Build a real CDS Hooks request (new hookInstance, context, no prefetch: the service\n"
            "reads the patient from --fhir-server) and print the cards.\n\n"
            "Without --service-url the service runs in-process with the CDS_* settings of the\n"
            "environment, except: EHR JWT verification is OFF, --fhir-server is added to the FHIR\n"
            "allow-list, and anonymous FHIR access is ON when no --token is given. Cards are\n"
            "logged to CDS_DATABASE_URL like the server does (they show on /analytics).\n\n"
            "Dates in --order files may be tokens (@today, @today-10d, @today-2w, @today-70y) and\n"
            "'@patient' stands for --patient.\n\n"
            "Exit codes: 0 cards printed (or none); 1 the FHIR server has no such patient, or the\n"
            "service answered an error (4xx/412/5xx, its OperationOutcome is printed); 2 bad\n"
            "arguments or files (order-select and order-sign need --order); 3 the CDS service or\n"
            "the FHIR server could not be reached."
        ),
    )
    fire.add_argument("--fhir-server", required=True, metavar="URL", help="FHIR R4 base URL")
    fire.add_argument("--patient", required=True, metavar="ID", help="Patient id on that server")
    fire.add_argument("--hook", required=True, choices=HOOKS)
    fire.add_argument(
        "--order",
        action="append",
        default=[],
        type=Path,
        metavar="FILE.json",
        help="a draft order (resource or Bundle); required for order-select / order-sign, "
        "repeatable",
    )
    fire.add_argument("--token", metavar="T", help="FHIR access token, sent as fhirAuthorization")
    fire.add_argument(
        "--service-url",
        metavar="URL",
        help="base URL of a running service (default: run the service in-process)",
    )
    fire.add_argument("--user-id", default=DEFAULT_USER_ID, help="context.userId")
    fire.add_argument("--encounter", metavar="ID", help="context.encounterId")
    fire.add_argument("--json", action="store_true", help="print the raw CDS Hooks response")
    fire.set_defaults(func=_fire)


def _seed(args: argparse.Namespace) -> int:
    from cds_service.tools import seed

    return seed.run(
        args.fhir_server, args.files, sys.stdout, sys.stderr, today=date.today(), token=args.token
    )


def _add_seed(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    seed = sub.add_parser(
        "seed",
        help="load the fixture scenarios into a FHIR server (transaction Bundles)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "POST transaction Bundles to a FHIR server: the shared Synthea organisations and\n"
            "practitioners first (00-* files), then the patients. Default files: the ones the\n"
            "package ships (cds_service/tools/fixtures: synthea/*.transaction.json, then a\n"
            "scenario per card topic and the red-flag screen patients, seed/*.json). Date tokens\n"
            "such as @today-10d become real dates at seed time. Prints the patient ids and,\n"
            "per scenario, the `cds-service fire` command that shows its card; progress goes\n"
            "to stderr.\n\n"
            "Exit codes: 0 loaded; 1 the server refused a bundle; 2 bad arguments or files;\n"
            "3 the server could not be reached."
        ),
    )
    seed.add_argument("--fhir-server", required=True, metavar="URL", help="FHIR R4 base URL")
    seed.add_argument("--token", metavar="T", help="bearer token for the FHIR server")
    seed.add_argument(
        "files", nargs="*", type=Path, metavar="FILES", help="bundle files or directories"
    )
    seed.set_defaults(func=_seed)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
