"""The ``voicepulse`` command: one entry point per stage, ``run`` for all of them, and tools.

Entry points stay thin: parse arguments, build the settings once, log them (secrets masked),
hand over to the composition root.
"""

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from ingest.app import STATUS_PATH
from ingest.pollers import require_kafka
from simulator.fake_twilio.command import add_parser as add_fake_twilio_parser
from voicepulse.errors import ConfigError, VoicePulseError
from voicepulse.pipeline import Role, build_pipeline
from voicepulse.runtime import configure_logging, event_loop_factory, tune_gc
from voicepulse.settings import Settings, load_settings
from warehouse.render import Format, write_relation

__all__ = ["main"]

logger = logging.getLogger("voicepulse")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config, **_overrides(args))
    except (VoicePulseError, ValueError) as exc:
        print(f"voicepulse: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        result: int = args.func(args, settings)
    except VoicePulseError as exc:
        logger.error("%s", exc)
        return 1
    return result


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "data_dir",
        "port",
        "host",
        "tenants_file",
        "demo",
        "kafka_bootstrap_servers",
        "dashboard_host",
        "dashboard_port",
        "alert_rules_file",
        "alert_metrics_port",
        "processor_metrics_port",
        "sink_metrics_port",
        "serve_workers",
    )
    return {name: getattr(args, name, None) for name in names}


def _run_roles(settings: Settings, roles: set[Role]) -> int:
    logger.info("settings: %s", settings.masked())
    pipeline = build_pipeline(settings, roles)

    def announce() -> None:
        extra = []
        if pipeline.dashboard is not None:
            extra = _dashboard_lines(settings, pipeline.dashboard.port, demo)
        if pipeline.stage_metrics is not None:
            where = f"http://{settings.host}:{pipeline.stage_metrics.port}/metrics"
            served = [name for role, name in _METERED if role in roles]
            extra.append(f"Metrics:   {where} ({' and '.join(served)})")
        _announce(settings, pipeline.receiver.port if pipeline.receiver else None, roles, extra)

    demo = None
    if Role.DASHBOARD in roles and Role.SIMULATE in roles:
        from dashboards.stage import demo_token

        demo = demo_token(settings)

    tune_gc(settings.gc_young_threshold)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(pipeline.run(on_started=announce))
    except VoicePulseError as exc:
        logger.error("%s", exc)
        return 1
    return 0


_METERED = ((Role.PROCESS, "processor"), (Role.SINK, "sink"))


def _announce(settings: Settings, port: int | None, roles: set[Role], extra: list[str]) -> None:
    lines = []
    if port is not None:
        lines.append(f"Receiver:  http://{settings.host}:{port}{STATUS_PATH}")
    if Role.SINK in roles:
        lines.append(f"Warehouse: {settings.data_dir}/ (DuckLake: {settings.catalog_path})")
        lines.append(
            'Query it:  .venv/bin/voicepulse sql "SELECT account_sid, sum(attempts) AS attempts,'
            ' sum(answered) AS answered FROM health_minute GROUP BY ALL"'
        )
    if Role.ALERT in roles and Role.SINK in roles:
        lines.append(
            'Alerts:    .venv/bin/voicepulse sql "SELECT changed_at, account_sid, rule, state,'
            ' message FROM alerts ORDER BY changed_at"'
        )
    if Role.SIMULATE in roles:
        lines.append("Demo:      simulated calls for the demo tenants are flowing in")
    if Role.PULL in roles:
        lines.append(
            f"Pulling:   Calls, Insights, Usage of {settings.twilio_account_sid}'s subaccounts"
        )
    lines.extend(extra)
    lines.append("Stop:      Ctrl-C")
    print("\n".join(lines), flush=True)


def _dashboard_lines(settings: Settings, port: int, demo: str | None) -> list[str]:
    lines = [f"Dashboard: http://{settings.dashboard_host}:{port}/"]
    if demo is not None:
        lines.append(f"Demo login token (an operator token for this demo only): {demo}")
    return lines


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    roles = {Role.SERVE, Role.PROCESS, Role.ALERT, Role.SINK, Role.DASHBOARD}
    if settings.demo_enabled:
        roles.add(Role.SIMULATE)
    if settings.twilio_configured:
        roles.add(Role.PULL)
    return _run_roles(settings, roles)


def _cmd_alert(args: argparse.Namespace, settings: Settings) -> int:
    from alerting.rules import default_rules_text, load_rules

    if args.print_default_rules:
        print(default_rules_text(), end="")
        return 0
    rules = load_rules(settings.alert_rules_file)  # a bad file: ConfigError, before any stage
    logger.info("alert rules: %s", ", ".join(r for r, rule in rules.rules.items() if rule.enabled))
    return _run_roles(settings, {Role.ALERT})


def _cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    try:
        require_kafka(settings)
    except ConfigError as exc:
        print(f"voicepulse pull: {exc}", file=sys.stderr)
        return 2
    if not args.once:
        return _run_roles(settings, {Role.PULL})
    from ingest.pollers import pull_once

    logger.info("settings: %s", settings.masked())
    puller = asyncio.run(pull_once(settings, None))
    failing = puller.failing()
    for account_sid, resource, status in failing:
        print(f"{account_sid} {resource}: {status}", file=sys.stderr)
    return 1 if any(status == "failing" for _, _, status in failing) else 0


def _cmd_fake_twilio(args: argparse.Namespace, settings: Settings) -> int:
    from simulator.fake_twilio.command import run_fake_twilio

    return run_fake_twilio(args, lambda text: print(text, flush=True))


def _cmd_stage(role: Role) -> Any:
    def command(args: argparse.Namespace, settings: Settings) -> int:
        return _run_roles(settings, {role})

    return command


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if settings.serve_workers == 1:
        return _run_roles(settings, {Role.SERVE})
    from voicepulse.workers import serve_workers

    logger.info("settings: %s", settings.masked())

    def announce(port: int) -> None:
        workers = f"Workers:   {settings.serve_workers} processes (/metrics: summed over them)"
        _announce(settings, port, {Role.SERVE}, [workers])

    return serve_workers(settings, announce)


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.tenants import load_tenants
    from voicepulse.settings import demo_tenants_path

    tenants = load_tenants(args.tenants or settings.tenants_file or demo_tenants_path())
    if args.envelopes is not None:
        from simulator import write_scenario

        truth = args.truth or args.envelopes.with_suffix(".truth.json")
        count = write_scenario(
            tenants,
            args.envelopes,
            truth,
            seconds=int(args.seconds or 300),
            callbacks_per_second=args.rate,
            seed=args.seed,
            call_timeout_s=settings.processor_call_timeout_s,
        )
        print(f"wrote {count} envelopes to {args.envelopes} and the ground truth to {truth}")
        return 0
    if args.url is None:
        print("simulate: give --url (post callbacks) or --envelopes (write a scenario)")
        return 2
    return _drive(args, tenants)


def _drive(args: argparse.Namespace, tenants: Any) -> int:
    """``voicepulse simulate --url``: progress on stderr, the summary on stdout."""
    import signal

    from simulator import Progress, Simulator

    def progress(line: Progress) -> None:
        print(line.line(), file=sys.stderr, flush=True)

    simulator = Simulator(
        lambda: str(args.url),
        tenants,
        rate=args.rate,
        seconds=args.seconds,
        callbacks=args.callbacks,
        connections=args.connections,
        seed=args.seed,
        truth=args.truth,
        progress=progress,
        progress_every_s=args.progress_every,
        timeout_s=args.timeout,
    )

    async def go() -> Progress:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, simulator.halt)
        loop.add_signal_handler(signal.SIGTERM, simulator.halt)
        async with simulator:
            await simulator.wait()
            return simulator.summary()

    tune_gc()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        summary = runner.run(go())
    if args.json:
        print(orjson.dumps(summary.as_dict()).decode())
    else:
        print(f"summary: {summary.line()}")
        print(
            f"summary: {summary.unsent} due but never written, "
            f"driver CPU {summary.cpu_us_per_request or 0:.0f} us per request"
        )
    if summary.late:
        print(
            f"simulate: the driver fell behind: {summary.late} of {summary.sent} callbacks "
            f"written more than 20 ms after their time",
            file=sys.stderr,
        )
    return 0 if summary.ok == summary.sent and not summary.unsent else 1


def _cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.lake import open_lake

    con = open_lake(settings, read_only=True)
    try:
        relation = con.sql(args.query)
        if relation is not None:
            _print_relation(relation, args.format)
    except duckdb.Error as exc:
        print(f"voicepulse sql: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    return 0


def _cmd_shell(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.lake import open_lake
    from warehouse.shell import Shell, prompt_lines

    con = open_lake(settings, read_only=True)
    try:
        return Shell(con, sys.stdout, sys.stderr).run(prompt_lines(sys.stdin, sys.stdout))
    finally:
        con.close()


def _cmd_export_billing(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.export import export_billing, parse_month
    from warehouse.lake import open_lake

    month = parse_month(args.month)
    con = open_lake(settings, read_only=True)
    try:
        written = export_billing(
            con, month, args.format, args.out, accounts=args.account or (), progress=True
        )
    finally:
        con.close()
    for path in written:
        print(path)
    if not written:
        print(f"voicepulse export: no billing for {args.month}", file=sys.stderr)
        return 1
    return 0


def _cmd_tokens(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.app import tokens_path
    from dashboards.tokens import TokenStore

    store = TokenStore(tokens_path(settings))
    try:
        if args.action == "create":
            token, info = store.create(
                args.name, operator=args.operator, accounts=tuple(args.tenant or ())
            )
            scope = "operator" if info.operator else ", ".join(info.accounts)
            print(f"token {info.id} ({info.name}, {scope}); shown once, keep it secret:")
            print(token)
        elif args.action == "list":
            for t in store.list():
                scope = "operator" if t.operator else ",".join(t.accounts)
                state = f"revoked {t.revoked_at}" if t.revoked_at else "live"
                print(f"{t.id}  {t.name}  {scope}  created {t.created_at}  {state}")
        elif not store.revoke(args.id):
            print(f"voicepulse tokens: no live token {args.id}", file=sys.stderr)
            return 1
    finally:
        store.close()
    return 0


def _cmd_backfill_health(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.backfill import backfill_health, settled_before
    from warehouse.lake import open_lake
    from warehouse.schema import migrate

    settled = settled_before(
        datetime.now(UTC).replace(tzinfo=None),
        settings.processor_grace_s,
        settings.processor_horizon_s,
        settings.processor_wall_clock_lag_s or 0.0,  # None: the stream runs on event time only
    )
    start = _utc_naive(args.start)
    end = min(_utc_naive(args.end), settled) if args.end else settled
    if start >= end:
        print(
            f"voicepulse backfill-health: nothing to do: windows up to {settled:%Y-%m-%d %H:%M} "
            "UTC are settled (the stream may still change later ones)",
            file=sys.stderr,
        )
        return 2
    open_lake(settings, read_only=True).close()  # no warehouse there: say so, create none
    con = open_lake(settings)
    try:
        migrate(con)
        result = backfill_health(
            con,
            start,
            end,
            call_timeout_s=settings.processor_call_timeout_s,
            isv_cps_limit=settings.isv_cps_limit,
        )
    finally:
        con.close()
    print(
        f"health_minute {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC: "
        f"{result.written} batch rows written ({result.new} where the window had none), "
        f"{result.kept} stored rows kept (equal to the batch's), {result.removed} removed"
    )
    return 0


def _utc_naive(text: str) -> datetime:
    """A date or an ISO time given on the command line, as a naive UTC datetime (no offset:
    UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not a date or an ISO 8601 time") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _print_relation(relation: duckdb.DuckDBPyRelation, fmt: Format) -> None:
    if fmt == "table":
        relation.show(max_rows=10_000, max_width=200)
    else:
        write_relation(relation, fmt, sys.stdout)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicepulse",
        description="Call health, alerts and billing for Twilio subaccounts.",
    )
    parser.add_argument("--config", type=Path, help="a TOML settings file")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="every stage in one process (embedded default)")
    _stage_options(run)
    demo = run.add_mutually_exclusive_group()
    demo.add_argument(
        "--demo",
        dest="demo",
        action="store_true",
        default=None,
        help="demo tenants and simulated traffic (default without a tenants file)",
    )
    demo.add_argument("--no-demo", dest="demo", action="store_false")
    run.add_argument("--dashboard-port", dest="dashboard_port", type=int, default=None)
    run.set_defaults(func=_cmd_run)

    for role, text in (
        (Role.SERVE, "the webhook receiver"),
        (Role.PROCESS, "the stream processors"),
        (Role.SINK, "the warehouse sink"),
    ):
        sub = commands.add_parser(role.value, help=text)
        _stage_options(sub)
        if role is not Role.SERVE:  # the receiver serves its /metrics on its own port
            dest = f"{'processor' if role is Role.PROCESS else 'sink'}_metrics_port"
            sub.add_argument("--metrics-port", dest=dest, type=int, help="/metrics port")
        sub.set_defaults(func=_cmd_stage(role))
        if role is Role.SERVE:
            _serve_options(sub)

    pull = commands.add_parser("pull", help="pull Calls, Insights and Usage from Twilio's APIs")
    _stage_options(pull)
    pull.add_argument("--once", action="store_true", help="one pass over every subaccount")
    pull.set_defaults(func=_cmd_pull)

    add_fake_twilio_parser(commands).set_defaults(func=_cmd_fake_twilio)

    dashboard = commands.add_parser("dashboard", help="the web dashboard and its JSON API")
    dashboard.add_argument("--data-dir", type=Path, default=None, help="warehouse directory")
    dashboard.add_argument("--host", dest="dashboard_host", default=None)
    dashboard.add_argument("--port", dest="dashboard_port", type=int, default=None)
    dashboard.set_defaults(func=_cmd_stage(Role.DASHBOARD))
    _tokens_parser(commands)

    simulate = commands.add_parser("simulate", help="post simulated, signed status callbacks")
    simulate.add_argument("--url", default=None, help="the receiver's status-callback URL")
    simulate.add_argument(
        "--envelopes",
        type=Path,
        default=None,
        help="write a scenario instead of posting: envelopes as delivered (JSON lines)",
    )
    simulate.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="the ground truth: with --url one JSON line per callback sent, with its answer; "
        "with --envelopes the expected health rows (JSON)",
    )
    simulate.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="with --url: stop after this long (default: at Ctrl-C); "
        "with --envelopes: the scenario's length (default 300)",
    )
    simulate.add_argument("--rate", type=float, default=20.0, help="callbacks per second")
    simulate.add_argument(
        "--callbacks", type=int, default=None, help="with --url: stop after this many callbacks"
    )
    simulate.add_argument(
        "--connections", type=int, default=64, help="keep-alive connections to the receiver"
    )
    simulate.add_argument(
        "--progress-every", type=float, default=5.0, help="seconds between progress lines"
    )
    simulate.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait for an answer"
    )
    simulate.add_argument("--json", action="store_true", help="print the summary as JSON")
    simulate.add_argument("--seed", type=int, default=None)
    simulate.add_argument(
        "--tenants",
        type=Path,
        default=None,
        help="tenants file whose tokens sign the callbacks (default: demo)",
    )
    simulate.set_defaults(func=_cmd_simulate)

    sql = commands.add_parser("sql", help="run one SQL query against the warehouse (read-only)")
    sql.add_argument("query")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("--data-dir", type=Path, default=None)
    sql.set_defaults(func=_cmd_sql)

    shell = commands.add_parser("shell", help="an interactive SQL prompt on the warehouse")
    shell.add_argument("--data-dir", type=Path, default=None)
    shell.set_defaults(func=_cmd_shell)

    export = commands.add_parser("export", help="export from the warehouse")
    exports = export.add_subparsers(dest="what", required=True, metavar="WHAT")
    billing = exports.add_parser("billing", help="one invoice-ready file per subaccount")
    billing.add_argument("--month", required=True, help="e.g. 2026-10")
    billing.add_argument("--format", choices=("csv", "parquet"), default="csv")
    billing.add_argument(
        "--account", action="extend", nargs="+", default=None, help="only these subaccounts"
    )
    billing.add_argument("--out", type=Path, default=Path("billing"), help="output directory")
    billing.add_argument("--data-dir", type=Path, default=None)
    billing.set_defaults(func=_cmd_export_billing)

    backfill = commands.add_parser(
        "backfill-health",
        help="compute health_minute in batch from the calls table for windows the stream missed",
    )
    backfill.add_argument(
        "--from", dest="start", required=True, help="first window, UTC: 2026-12-01 or ISO time"
    )
    backfill.add_argument(
        "--to", dest="end", default=None, help="end (excluded), UTC; default: the last settled"
    )
    backfill.add_argument("--data-dir", type=Path, default=None)
    backfill.set_defaults(func=_cmd_backfill_health)

    alert = commands.add_parser(
        "alert", help="the alert stage (rules over health windows); silences: add, list, expire"
    )
    _stage_options(alert)
    alert.add_argument("--rules-file", dest="alert_rules_file", type=Path, default=None)
    alert.add_argument(
        "--metrics-port", dest="alert_metrics_port", type=int, default=None, help="/metrics port"
    )
    alert.add_argument(
        "--print-default-rules",
        action="store_true",
        help="print the built-in rules (a rules file to start from) and exit",
    )
    _silence_commands(alert)
    return parser


def _serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--workers",
        dest="serve_workers",
        type=int,
        default=None,
        help="receiver processes answering on the port, each with its own Kafka producer and "
        "spool (<data-dir>/spool/worker-<i>); /metrics on any of them is the sum over all "
        "(default 1: one process, spooling into <data-dir>/spool)",
    )
    serve.set_defaults(func=_cmd_serve)


def _silence_commands(alert: argparse.ArgumentParser) -> None:
    """``voicepulse alert silence|silences|expire``: the silences every notifier obeys."""

    alert.set_defaults(func=_cmd_alert)
    commands = alert.add_subparsers(dest="alert_command", metavar="SILENCES")
    silence = commands.add_parser("silence", help="notify no one about matching alerts for a while")
    silence.add_argument("--account", default=None, help="AC... or ISV (default: every one)")
    silence.add_argument("--rule", default=None, help="e.g. asr_low (default: every rule)")
    silence.add_argument("--direction", choices=("outbound", "inbound"), default=None)
    until = silence.add_mutually_exclusive_group(required=True)
    until.add_argument("--for", dest="duration", help="how long, e.g. 2h, 90m, 1d")
    until.add_argument("--until", help="when it ends, ISO 8601 with an offset")
    silence.add_argument("--comment", required=True, help="why (shown with the silence)")
    silence.add_argument("--by", default=None, help="who silences (default: the login name)")
    silences = commands.add_parser("silences", help="list the silences")
    silences.add_argument("--all", action="store_true", help="the expired ones too")
    silences.add_argument("--format", choices=("table", "json"), default="table")
    expire = commands.add_parser("expire", help="end a silence now")
    expire.add_argument("id")
    for sub, func in ((silence, _cmd_silence), (silences, _cmd_silences), (expire, _cmd_expire)):
        sub.add_argument("--data-dir", type=Path, default=None, help="where silences.sqlite is")
        sub.set_defaults(func=func)


def _cmd_silence(args: argparse.Namespace, settings: Settings) -> int:
    from alerting.silences import SilenceError, SilenceStore, parse_duration

    now = datetime.now(UTC)
    try:
        ends = now + parse_duration(args.duration) if args.duration else _utc(args.until)
    except ValueError as exc:
        raise SilenceError(f"--until: {exc}") from exc
    silence = SilenceStore.in_data_dir(settings.data_dir).create(
        account_sid=args.account,
        rule=args.rule,
        direction_group=args.direction,
        starts_at=now,
        ends_at=ends,
        comment=args.comment,
        created_by=args.by or _login_name(),
    )
    print(silence.id)
    return 0


def _cmd_silences(args: argparse.Namespace, settings: Settings) -> int:
    from alerting.silences import SilenceStore

    found = SilenceStore.in_data_dir(settings.data_dir).silences(include_expired=args.all)
    if args.format == "json":
        docs = [silence.to_json() | {"state": silence.state()} for silence in found]
        sys.stdout.write(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    rows = [("ID", "STATE", "ACCOUNT", "RULE", "DIRECTION", "STARTS", "ENDS", "BY", "COMMENT")]
    for s in found:
        matchers = (s.account_sid or "all", s.rule or "all", s.direction_group or "all")
        times = (f"{s.starts_at:%Y-%m-%d %H:%M}Z", f"{s.ends_at:%Y-%m-%d %H:%M}Z")
        rows.append((s.id, s.state(), *matchers, *times, s.created_by, s.comment))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        print("  ".join((*cells, row[-1])))
    return 0


def _cmd_expire(args: argparse.Namespace, settings: Settings) -> int:
    from alerting.silences import SilenceStore

    silence = SilenceStore.in_data_dir(settings.data_dir).expire(args.id)
    print(f"{silence.id} ends {silence.ends_at.isoformat()}")
    return 0


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (e.g. 2026-12-05T10:00:00+00:00)")
    return moment


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _tokens_parser(commands: Any) -> None:
    tokens = commands.add_parser("tokens", help="dashboard access tokens")
    actions = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a token and print it (once)")
    whom = create.add_mutually_exclusive_group(required=True)
    whom.add_argument("--operator", action="store_true", help="sees everything, may act on alerts")
    whom.add_argument(
        "--tenant", action="append", metavar="AC...", help="sees this subaccount (repeatable)"
    )
    create.add_argument("--name", required=True, help="who or what the token is for")
    actions.add_parser("list", help="the tokens (never their secrets)")
    revoke = actions.add_parser("revoke", help="stop a token working, at once")
    revoke.add_argument("id")
    for sub in actions.choices.values():
        sub.add_argument("--data-dir", type=Path, default=None)
    tokens.set_defaults(func=_cmd_tokens)


def _stage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="warehouse directory")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--tenants-file", type=Path, default=None)
    parser.add_argument(
        "--kafka-bootstrap-servers", default=None, help="Kafka brokers; unset: the in-process bus"
    )


if __name__ == "__main__":
    sys.exit(main())
