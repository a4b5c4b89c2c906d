"""`make run`: the whole stack on this machine, no Docker.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL, or are started embedded
under the data folder when those are not set. Then: the database is created if
missing, every schema is migrated, an SMTP sink keeps mail in <data>/mail, and every
service that exists runs under gunicorn. One Ctrl-C stops it all.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from tools.devstack import demo
from tools.devstack.database import ensure_database, migrate
from tools.devstack.processes import ProcessFailed, Supervisor
from tools.devstack.smtp_sink import SmtpSink
from tools.devstack.stack import (
    DEFAULT_PORTS,
    DEFAULT_SMTP_PORT,
    ROOT,
    StackConfig,
    available,
    build_specs,
)

log = logging.getLogger("devstack")
DATABASE_NAME = "shopstack"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.devstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / ".data",
        help="embedded databases, mail, logs, metrics (default: .data)",
    )
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port)
    parser.add_argument("--smtp-port", type=int, default=DEFAULT_SMTP_PORT)
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers per service (WEB_CONCURRENCY)"
    )
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=None,
        help="gunicorn workers of the gateway (default: --workers)",
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated subset, e.g. auth,users (default: all)"
    )
    parser.add_argument(
        "--seed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="demo categories and products and a demo admin, printed at start (--no-seed: none)",
    )
    parser.add_argument("--seed-products", type=int, default=1_000)
    parser.add_argument(
        "--quiet", action="store_true", help="keep process output in <data>/logs only"
    )
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    return parser.parse_args(argv)


def start_databases(args: argparse.Namespace, stack: ExitStack) -> tuple[str, str]:
    """The stack's URLs: from the environment, or from embedded servers we own."""
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url:
        from tools.devstack.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(args.data_dir / "pg")
        stack.callback(_quietly, "postgres", pg.stop)
        database_url = pg.url(DATABASE_NAME)
        log.info("embedded PostgreSQL in %s", args.data_dir / "pg")
    if not redis_url:
        from tools.devstack.embedded import EmbeddedRedis

        rd = EmbeddedRedis(args.data_dir / "redis")
        stack.callback(_quietly, "redis", rd.stop)
        redis_url = rd.url
        log.info("embedded Redis at %s", redis_url)
    return database_url, redis_url


def _quietly(what: str, stop: object) -> None:
    try:
        stop()  # type: ignore[operator]
    except Exception:
        log.exception("stopping %s failed", what)


def seed_demo(config: StackConfig, products: int) -> list[str]:
    """Demo catalog and admin (tools/devstack/demo.py); the banner's lines about them."""
    names = available(config)
    seeded = None
    if "catalog" in names:
        demo.seed_catalog(config, products)
        seeded = products
    admin = demo.ensure_admin(config) if "auth" in names else None
    return demo.banner_lines(config, admin, seeded)


def banner(
    config: StackConfig, names: list[str], mail_dir: Path, demo_lines: Sequence[str] = ()
) -> str:
    lines = ["", "shopstack is running (Ctrl-C stops everything):"]
    if "gateway" in names:
        lines.append(f"  gateway   {config.url('gateway')}   (API docs: /docs)")
    for name in names:
        if name != "gateway":
            lines.append(f"  {name:<9} {config.url(name)}")
    lines += [
        f"  mail      {mail_dir}  (SMTP 127.0.0.1:{config.smtp_port})",
        f"  logs      {config.data_dir / 'logs'}",
        *demo_lines,
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    args.data_dir = args.data_dir.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as stack:
        database_url, redis_url = start_databases(args, stack)
        if ensure_database(database_url):
            log.info("created the database")
        log.info("migrated: %s", ", ".join(migrate(database_url)))
        mail_dir = args.data_dir / "mail"
        sink = SmtpSink(mail_dir, args.smtp_port).start()
        stack.callback(_quietly, "smtp sink", sink.stop)
        workers = {"gateway": args.gateway_workers or args.workers}
        config = StackConfig(
            database_url=database_url,
            redis_url=redis_url,
            data_dir=args.data_dir,
            ports={name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS},
            smtp_port=args.smtp_port,
            concurrency=workers,
            default_concurrency=args.workers,
            only=args.only.split(",") if args.only else None,
        )
        demo_lines = seed_demo(config, args.seed_products) if args.seed else []
        supervisor = Supervisor(
            args.data_dir / "logs",
            echo=not args.quiet,
            graceful_timeout=config.graceful_timeout + 10,
        )
        stack.callback(supervisor.stop_all)
        for spec in build_specs(config):
            supervisor.add(spec)
        if stop.is_set():
            return 130
        try:
            supervisor.start_all(timeout=args.startup_timeout, abort=stop)
        except ProcessFailed as exc:
            log.error("%s", exc)
            return 130 if stop.is_set() else 1
        print(banner(config, list(supervisor.specs), mail_dir, demo_lines), flush=True)
        while not stop.wait(0.5):
            if died := supervisor.exited():
                for name, code in died.items():
                    log.error(
                        "%s exited with code %s; its log ends with:\n%s",
                        name,
                        code,
                        supervisor.log_tail(name),
                    )
                return 1
        log.info("stopping")
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="devstack| %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-connection chatter
    sys.exit(run(parse_args(argv)))


if __name__ == "__main__":
    main()
