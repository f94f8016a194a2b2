"""``labdeck`` command line: wires settings, the core, the faces and the simulator.

Imports are lazy so that ``labdeck --help`` and ``labdeck ops`` start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from labdeck import __version__

if TYPE_CHECKING:
    from core.config import Profile, Settings, TuiSettings
    from core.errors import LabdeckError
    from core.service import Labdeck

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_NO_CONFIG = """\
labdeck has no cluster configured yet.

  Try it on the built-in simulator:   labdeck demo
  Or configure a Proxmox VE cluster in {path}:

      [pve]
      host = "pve1.example.lan"
      user = "labdeck@pve"
      token_name = "dashboard"
      token_file = "~/.config/labdeck/pve-token"   # chmod 600
      ca_bundle = "~/.config/labdeck/pve-root-ca.pem"

  or set PROXMOX_HOST, PROXMOX_USER, PROXMOX_TOKEN_NAME, PROXMOX_TOKEN_VALUE.
  See README.md, "Connect to a real cluster".
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labdeck",
        description="Dashboard and MCP server for Proxmox VE (and TrueNAS), on one async core.",
        epilog="With no command, opens the dashboard on the configured cluster.",
    )
    parser.add_argument("--version", action="version", version=f"labdeck {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: XDG config dir)")
    parser.add_argument("--profile", metavar="NAME", help="profile to use (default: 'default')")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("demo", help="dashboard on the embedded simulator (no config, no network)")

    mcp = sub.add_parser(
        "mcp",
        help="MCP server (stdio by default); read-only unless --allow-writes",
        allow_abbrev=False,  # `--token SECRET` must not pass for --token-file (and be echoed)
    )
    mcp.add_argument("--demo", action="store_true", help="serve the embedded simulator")
    # also after `mcp` (DESIGN: `labdeck mcp --profile P`); SUPPRESS keeps `labdeck --profile P mcp`
    mcp.add_argument("--profile", metavar="NAME", default=argparse.SUPPRESS, help="profile to use")
    mcp.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    mcp.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP bind address (streamable-http; default loopback, others print a warning)",
    )
    mcp.add_argument("--port", type=int, default=8000, help="HTTP port (streamable-http; 0: any)")
    mcp.add_argument(
        "--token-file",
        metavar="PATH",
        help="file (mode 0600) holding the bearer token HTTP clients must send "
        "(default: LABDECK_MCP_TOKEN)",
    )
    mcp.add_argument("--allow-writes", action="store_true", help="allow tools that change state")

    serve = sub.add_parser(
        "serve",
        help="the dashboard in a web browser (textual-serve); NO login: keep it on loopback",
        description="Serve the dashboard over HTTP: each browser tab runs its own dashboard. "
        "textual-serve has no authentication: anyone who reaches the port controls the "
        "dashboard with its token's rights. Keep the default loopback address and use an SSH "
        "tunnel (ssh -L 8080:127.0.0.1:8080 host) or an authenticating proxy.",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="serve the embedded simulator (one, shared by every tab)",
    )
    serve.add_argument(
        "--profile", metavar="NAME", default=argparse.SUPPRESS, help="profile to use"
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default loopback; others print a warning: no auth)",
    )
    serve.add_argument("--port", type=int, default=8080, help="HTTP port (0: any free port)")
    serve.add_argument(
        "--public-url",
        metavar="URL",
        help="the address browsers use, behind a proxy (default http://HOST:PORT)",
    )

    call = sub.add_parser("call", help="run one catalogue operation: labdeck call OP key=value ...")
    call.add_argument("op", metavar="OP", help="operation name (see `labdeck ops`)")
    call.add_argument("args", nargs="*", metavar="key=value", help="parameters")
    call.add_argument("--json", action="store_true", help="print the result as JSON")
    call.add_argument("--demo", action="store_true", help="run against the embedded simulator")
    call.add_argument(
        "--allow-writes", action="store_true", help="allow operations that change state"
    )
    call.add_argument("--yes", action="store_true", help="confirm disruptive operations")

    ops = sub.add_parser("ops", help="list the operations catalogue")
    ops.add_argument("--json", action="store_true", help="print as JSON (with parameter schemas)")
    ops.add_argument(
        "--markdown",
        action="store_true",
        help="print the operations reference (docs/operations.md)",
    )

    doctor = sub.add_parser(
        "doctor", help="check config, permissions, TLS, reachability and token privileges"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")

    audit = sub.add_parser("audit", help="show the audit log: every write, and agents' calls")
    audit.add_argument("-n", "--lines", type=int, default=20, help="how many recent entries")
    audit.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    audit.add_argument("--json", action="store_true", help="print the raw JSON lines")

    config = sub.add_parser("config", help="store secrets in the OS keyring; show settings")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    set_token = config_sub.add_parser(
        "set-token",
        help="read a secret from stdin (never argv) and store it in the OS keyring",
    )
    set_token.add_argument(
        "--kind", choices=["pve-token", "pve-password", "truenas-api-key"], default="pve-token"
    )
    config_sub.add_parser("show", help="the resolved profile, secrets hidden")
    config_sub.add_parser("reference", help="print the settings reference (docs/configuration.md)")

    sim = sub.add_parser(
        "sim",
        help="run the Proxmox VE simulator alone and print how to reach it",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("-h", "--help", action=_SimHelp, nargs=0, help="show this help and exit")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8006)
    sim.add_argument("--nodes", type=_at_least(1), default=3, metavar="N")
    sim.add_argument("--guests", type=_at_least(0), default=24, metavar="N")
    sim.add_argument(
        "--pools", type=_at_least(0), default=3, metavar="N",
        help="resource pools (default 3: prod, lab and media); more get team names and share "
        "the guests unevenly (a few big, most small, some guests in none)",
    )  # fmt: skip
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument(
        "--truenas-version", choices=["25.04", "25.10", "26"], default="25.10",
        help="TrueNAS release whose API the simulator serves beside PVE",
    )  # fmt: skip
    sim.add_argument(
        "--faults", metavar="SPEC", default="",
        help="inject faults, e.g. 'GET /cluster/resources=503x2,POST */status/start=reset' "
        "(grammar below)",
    )  # fmt: skip
    return parser


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``, refused with a clear message
    before anything starts."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


class _SimHelp(argparse.Action):
    """``labdeck sim --help`` with the fault grammar, imported only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:  # fmt: skip
        from simulator.faults import spec_help

        parser.epilog = spec_help()
        parser.print_help()
        parser.exit()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="labdeck: %(levelname)s: %(message)s",
    )
    if not verbose:
        for noisy in ("httpx", "httpcore", "mcp", "uvicorn"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _print_error(error: LabdeckError, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(error.to_dict()))
    else:
        print(f"labdeck: error: {error.message}", file=sys.stderr)
        for name, why in sorted(getattr(error, "fields", {}).items()):
            print(f"  {name}: {why}", file=sys.stderr)
        if error.hint:
            print(f"  {error.hint}", file=sys.stderr)


def _exit_code(error: LabdeckError) -> int:
    return EXIT_USAGE if error.kind in ("invalid_input", "config") else EXIT_FAILED


def _load_settings(args: argparse.Namespace) -> Settings:
    from pathlib import Path

    from core.config import load_settings

    return load_settings(Path(args.config).expanduser() if args.config else None)


def _load_profile(args: argparse.Namespace) -> Profile:
    return _load_settings(args).resolve(args.profile)


def _demo_tui_settings(args: argparse.Namespace) -> TuiSettings:
    """The person's [tui] table for the demo too; a broken config must not stop the demo."""
    from core.config import TuiSettings
    from core.errors import ConfigError

    try:
        return _load_settings(args).tui
    except ConfigError as error:
        print(f"labdeck: warning: [tui] settings not used: {error.message}", file=sys.stderr)
        return TuiSettings()


def _dashboard_options(tui: TuiSettings) -> dict[str, Any]:
    """LabdeckApp's keyword arguments from [tui]: refresh, keymap, the kept theme."""
    from tui.prefs import ThemeStore, default_state_path

    return {
        "refresh_interval": tui.refresh_interval,
        "keymap": tui.keymap,
        "themes": ThemeStore(default_state_path(), config_theme=tui.theme),
    }


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around big imports, then freeze what they made.

    An import makes hundreds of thousands of objects (modules, classes, pydantic schemas) that
    live as long as the process; the collector keeps walking them while they are made, for
    nothing (about a sixth of the MCP SDK's import). Frozen, later collections skip them too,
    as ``core.service.freeze_long_lived`` does for what a dashboard or server loads later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _audit_log() -> Any:
    from core.audit import AuditLog
    from core.config import state_dir

    return AuditLog(state_dir() / "audit.jsonl")


# ------------------------------------------------------------------ commands


def _cmd_dashboard(args: argparse.Namespace, *, demo: bool) -> int:
    from core.service import Labdeck

    handle = None
    if demo:
        from labdeck.demo import demo_profile, start_demo

        tui = _demo_tui_settings(args)
        handle = start_demo()
        profile = demo_profile(handle, allow_writes=True)
        profiles = [profile]
    else:
        settings = _load_settings(args)
        profile, tui = settings.resolve(args.profile), settings.tui
        profiles = _configured_profiles(settings, profile)
        if not (profile.pve.configured or profile.truenas.configured):
            return _no_config(args)
    try:
        from tui.app import run_dashboard

        audit = _audit_log()

        def make_service(chosen: Profile) -> Labdeck:
            return Labdeck(chosen, face="tui", audit=audit)

        run_dashboard(
            make_service(profile),
            profiles=profiles,
            make_service=make_service,
            **_dashboard_options(tui),
        )
    finally:
        if handle is not None:
            handle.stop()
    return EXIT_OK


def _no_config(args: argparse.Namespace) -> int:
    from core.config import default_config_path

    print(_NO_CONFIG.format(path=args.config or default_config_path()), file=sys.stderr)
    return EXIT_USAGE


def _cmd_serve(args: argparse.Namespace) -> int:
    from labdeck import serve

    url = args.public_url.rstrip("/") if args.public_url else None
    if args.demo:
        tui = _demo_tui_settings(args)
        serve.serve_demo(host=args.host, port=args.port, tui=tui, url=url)
        return EXIT_OK
    profile = _load_profile(args)
    if not (profile.pve.configured or profile.truenas.configured):  # here, not per browser tab
        return _no_config(args)
    command = serve.dashboard_command(config=args.config, profile=args.profile)
    serve.serve(host=args.host, port=args.port, command=command, url=url)
    return EXIT_OK


def _cmd_mcp(args: argparse.Namespace) -> int:
    # Only the MCP SDK and the settings are imported before `initialize` is answered; the
    # core's operations and clients come with the first tool listed or called (issue #7).
    with _collector_paused():
        import core.config  # noqa: F401  (pydantic-settings)
        import mcp_server
    token = None
    if args.transport == "streamable-http":
        from mcp_server.http import resolve_token

        token = resolve_token(args.token_file)  # refuses early: no token, no listening
    handle = None
    if args.demo:
        from labdeck.demo import demo_profile, start_demo

        handle = start_demo()
        profiles = [demo_profile(handle, allow_writes=args.allow_writes)]
    else:
        profiles = _mcp_profiles(args)
    audit = _audit_log()

    def factory_for(profile: Profile) -> Callable[[], Labdeck]:
        def factory() -> Labdeck:
            from core.service import Labdeck

            return Labdeck(
                profile,
                face="mcp",
                allow_writes=args.allow_writes or profile.policy.allow_writes,
                audit=audit,
                audit_reads=True,
                how_to_allow="The MCP server is read-only: restart it with `labdeck mcp "
                "--allow-writes` (or set allow_writes = true in [policy]) to allow this.",
            )

        return factory

    factories = {profile.name: factory_for(profile) for profile in profiles}
    allow_writes = args.allow_writes or any(p.policy.allow_writes for p in profiles)
    try:
        for profile in profiles:
            if profile.policy.allow_operations is not None:
                # the service checks the names against the catalogue: a typo stops the server
                # now, with the error, rather than failing every tool call later
                factories[profile.name]()
        mcp_server.run(
            factories[profiles[0].name],
            clusters=factories,
            transport=args.transport,
            allow_writes=allow_writes,
            host=args.host,
            port=args.port,
            token=token,
        )
    finally:
        if handle is not None:
            handle.stop()
    return EXIT_OK


def _mcp_profiles(args: argparse.Namespace) -> list[Profile]:
    """The chosen profile first, then every other configured one (each a ``cluster``)."""
    from pathlib import Path

    from core.config import load_settings

    settings = load_settings(Path(args.config).expanduser() if args.config else None)
    return _configured_profiles(settings, settings.resolve(args.profile))


def _configured_profiles(settings: Settings, chosen: Profile) -> list[Profile]:
    """``chosen`` first, then every other profile with PVE or TrueNAS configured."""
    others = [
        profile
        for profile in (settings.resolve(name) for name in settings.profile_names())
        if profile.name != chosen.name and (profile.pve.configured or profile.truenas.configured)
    ]
    return [chosen, *others]


def parse_assignments(op_params: Any, pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` words -> a dict; JSON values are decoded, lists may be comma-separated."""
    from core.errors import InvalidInput

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidInput(
                f"cannot read {pair!r}: parameters are written key=value.",
                hint="Example: labdeck call pve_guest_status vmid=100",
            )
        value: Any = raw
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise InvalidInput(
                    f"{key}: {raw!r} is not valid JSON.", hint='Example: fields=\'["vmid","name"]\''
                ) from None
        else:
            field = op_params.model_fields.get(key)
            if field is not None and "list" in str(field.annotation):
                value = [item for item in raw.split(",") if item]
        values[key] = value
    return values


def _render_human(result: Any) -> str:
    from core.models import Table
    from core.textsafe import printable

    if isinstance(result, Table):
        # printable: text from guests and the NAS never drives the terminal
        cells = [
            [("" if v is None else printable(str(v), multiline=False)) for v in row]
            for row in result.rows
        ]
        widths = [len(c) for c in result.columns]
        for row in cells:
            widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
        lines = ["  ".join(c.upper().ljust(w) for c, w in zip(result.columns, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        footer = f"{len(result.rows)} of {result.total}"
        if result.next_cursor:
            footer += f" (next page: cursor={result.next_cursor})"
        return "\n".join([*(line.rstrip() for line in lines), footer])
    data = result.model_dump(mode="json")
    lines = []
    for key, value in data.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value)
        lines.append(f"{key}: {printable(str(value))}")
    return "\n".join(lines)


def _cmd_call(args: argparse.Namespace) -> int:
    import asyncio

    from core.errors import LabdeckError
    from core.ops import get_operation
    from core.service import Labdeck, parse_params

    handle = None
    try:
        op = get_operation(args.op)
        params = parse_params(op, parse_assignments(op.params, args.args))
        if args.demo:
            from labdeck.demo import demo_profile, start_demo

            handle = start_demo(speed=20.0)
            profile = demo_profile(handle, allow_writes=False)
        else:
            profile = _load_profile(args)
        allow = True if args.allow_writes else None
        service = Labdeck(
            profile,
            face="cli",
            allow_writes=allow,
            audit=_audit_log(),
            audit_reads=True,
            how_to_allow="Add --allow-writes (or set allow_writes = true in [policy]).",
        )

        def progress(elapsed_s: float, message: str) -> None:
            print(f"labdeck: {message} ({elapsed_s:.1f} s)", file=sys.stderr)

        async def run() -> Any:
            async with service:
                return await service.call(op, params, confirmed=args.yes, progress=progress)

        try:
            result = asyncio.run(run())
        except KeyboardInterrupt:
            print("labdeck: interrupted", file=sys.stderr)
            return 130
        if args.json:
            print(result.model_dump_json(indent=2))
        else:
            print(_render_human(result))
        return EXIT_OK
    except LabdeckError as error:
        if error.kind == "confirmation_required":
            error.hint = "Add --yes to confirm."
        _print_error(error, as_json=args.json)
        return _exit_code(error)
    finally:
        if handle is not None:
            handle.stop()


_LEGACY_ENV = {
    ("pve", "host"): "PROXMOX_HOST", ("pve", "port"): "PROXMOX_PORT",
    ("pve", "user"): "PROXMOX_USER", ("pve", "token_name"): "PROXMOX_TOKEN_NAME",
    ("pve", "token_value"): "PROXMOX_TOKEN_VALUE", ("pve", "verify_ssl"): "PROXMOX_VERIFY_SSL",
    ("truenas", "url"): "TRUENAS_URL", ("truenas", "api_key"): "TRUENAS_API_KEY",
    ("truenas", "verify_ssl"): "TRUENAS_VERIFY_SSL",
}  # fmt: skip


def configuration_markdown() -> str:
    """The settings reference, generated from the settings models (docs/configuration.md)."""
    from pydantic import BaseModel

    from core.config import (
        PolicySettings,
        PveSettings,
        PveSshSettings,
        TrueNasSettings,
        TuiSettings,
    )

    lines = [
        "# Configuration reference",
        "",
        "Generated from the settings models by `labdeck config reference`; a test fails when",
        "this file is stale. File: `$XDG_CONFIG_HOME/labdeck/config.toml`. The top-level",
        "tables are the default profile; more go in `[profiles.NAME.pve]` and so on.",
        "Precedence: command-line flags, `LABDECK_*`, `PROXMOX_*`/`TRUENAS_*`, the file,",
        "defaults. Secrets come from the keyring, a mode-0600 file, or the environment.",
        "",
    ]
    for section, model in (("pve", PveSettings), ("pve.ssh", PveSshSettings),
                           ("truenas", TrueNasSettings), ("policy", PolicySettings),
                           ("tui", TuiSettings)):  # fmt: skip
        properties = model.model_json_schema().get("properties", {})
        lines += [f"## `[{section}]`", "", "| key | type | default | env | meaning |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for name, field in model.model_fields.items():
            value = field.get_default(call_default_factory=True, validated_data={})
            if isinstance(value, BaseModel):
                continue  # a sub-table: its own section
            env = f"`LABDECK_{section.upper()}_{name.upper()}`"
            if "." in section:  # env vars split once: a sub-table is one JSON variable
                env = f"in `LABDECK_{section.upper().replace('.', '_')}` (JSON)"
            if (section, name) in _LEGACY_ENV:
                env += f", `{_LEGACY_ENV[(section, name)]}`"
            default = "—" if value is None else f"`{value!r}`"
            meaning = (field.description or "").replace("|", "/")
            kind = _schema_type(properties.get(name, {}))
            lines.append(f"| `{name}` | {kind} | {default} | {env} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def _schema_type(prop: dict[str, Any]) -> str:
    """A short type for a JSON-schema property: ``int``, ``qemu / lxc``, ``list of str``."""
    names = {"integer": "int", "string": "str", "boolean": "bool", "number": "float"}
    if "enum" in prop:
        return " / ".join(str(v) for v in prop["enum"])
    if "const" in prop:
        return str(prop["const"])
    if "anyOf" in prop:
        kinds = [_schema_type(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(kinds) or "any"
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_schema_type(prop.get('items', {}))}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"table of {_schema_type(prop['additionalProperties'])}"
    return names.get(str(kind), str(kind) if kind else "any")


def operations_markdown() -> str:
    """The operations reference, generated from the catalogue (docs/operations.md)."""
    from core.ops import catalogue

    lines = [
        "# Operations reference",
        "",
        "Generated from the catalogue by `labdeck ops --markdown`; a test fails when this file",
        "is stale. Every operation is an MCP tool of the same name, a `labdeck call` command,",
        "and (where it fits) a dashboard action.",
        "",
        "Access: **read** changes nothing; **write** needs writes allowed (`--allow-writes` or",
        "`[policy] allow_writes`); **write!** also needs a person's confirmation.",
        "",
    ]
    for backend, title in (("pve", "Proxmox VE"), ("truenas", "TrueNAS")):
        ops = [op for op in catalogue().values() if op.backend == backend]
        if not ops:
            continue
        lines += [f"## {title}", ""]
        for op in ops:
            flags = [op.access]
            if op.destructive:
                flags.append("destructive")
            if op.idempotent:
                flags.append("idempotent")
            lines += [f"### `{op.name}`", "", f"*{', '.join(flags)}* — {op.summary}", ""]
            lines += [op.description, ""]
            fields = op.params.model_fields
            properties = op.params.model_json_schema().get("properties", {})
            if fields:
                lines += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
                for name, field in fields.items():
                    kind = _schema_type(properties.get(field.alias or name, {}))
                    default = "required" if field.is_required() else f"`{field.default!r}`"
                    meaning = (field.description or "").replace("|", "/")
                    lines.append(f"| `{name}` | {kind} | {default} | {meaning} |")
                lines.append("")
    return "\n".join(lines)


def _cmd_ops(args: argparse.Namespace) -> int:
    from core.ops import catalogue

    ops = catalogue()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": op.name,
                        "summary": op.summary,
                        "read_only": op.read_only,
                        "destructive": op.destructive,
                        "idempotent": op.idempotent,
                        "params": op.params.model_json_schema(),
                    }
                    for op in ops.values()
                ],
                indent=2,
            )
        )
        return EXIT_OK
    if args.markdown:
        print(operations_markdown(), end="")
        return EXIT_OK
    width = max(len(name) for name in ops)
    for op in ops.values():
        print(f"{op.name.ljust(width)}  {op.access.ljust(6)}  {op.summary}")
    print("\nread: changes nothing; write: needs --allow-writes; write!: also --yes (disruptive)")
    return EXIT_OK


def _cmd_sim(args: argparse.Namespace) -> int:
    from simulator import SimulatorConfig
    from simulator.cli import run_forever
    from simulator.faults import parse_spec

    try:
        parse_spec(args.faults)  # refuse a wrong spec before anything listens
    except ValueError as exc:
        print(f"labdeck: error: --faults: {exc}", file=sys.stderr)
        print("  See `labdeck sim --help` for the grammar.", file=sys.stderr)
        return EXIT_USAGE
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        nodes=args.nodes,
        guests=args.guests,
        pools=args.pools,
        seed=args.seed,
        speed=args.speed,
        truenas_version=args.truenas_version,
        faults=args.faults,
    )
    run_forever(config, print_fn=lambda line: print(line, flush=True))
    return EXIT_OK


def format_audit_entry(entry: dict[str, Any]) -> str:
    """One line a person can scan: time, face, access, operation, target, outcome."""
    when = str(entry.get("time", ""))[11:19]
    target = entry.get("target") or ""
    outcome = entry.get("outcome", "?")
    if outcome != "ok":
        outcome = f"{outcome}: {entry.get('message') or entry.get('error', '')}"
    elif entry.get("upid"):
        outcome = f"ok ({entry['upid']})"
    from core.textsafe import printable

    line = (
        f"{when}  {entry.get('face', '?'):<3}  {entry.get('access', 'write'):<5}  "
        f"{entry.get('operation', '?'):<22} {target:<18} {outcome}"
    ).rstrip()
    return printable(line, multiline=False)  # messages quote what servers and guests said


def _cmd_audit(args: argparse.Namespace) -> int:
    import time

    log = _audit_log()

    def show(entry: dict[str, Any]) -> None:
        print(json.dumps(entry) if args.json else format_audit_entry(entry), flush=True)

    entries = log.read()
    for entry in entries[-args.lines :] if args.lines > 0 else []:
        show(entry)
    if not args.follow:
        if not entries and not args.json:
            print(f"no entries yet in {log.path}", file=sys.stderr)
        return EXIT_OK
    offset = log.path.stat().st_size if log.path.exists() else 0
    pending = b""
    while True:  # until Ctrl+C, like tail -f
        time.sleep(0.25)
        if not log.path.exists():
            continue
        size = log.path.stat().st_size
        if size < offset:  # rotated or truncated
            offset = 0
        if size == offset:
            continue
        with log.path.open("rb") as fh:
            fh.seek(offset)
            chunk = fh.read(size - offset)
        offset = size
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                show(json.loads(line))


_KEYRING_SERVICE = "labdeck"
_KEYRING_SETTING = {
    "pve-token": ("pve", "token_keyring"),
    "pve-password": ("pve", "password_keyring"),
    "truenas-api-key": ("truenas", "api_key_keyring"),
}


def _cmd_config(args: argparse.Namespace) -> int:
    if args.config_command == "reference":
        print(configuration_markdown(), end="")
        return EXIT_OK
    if args.config_command == "show":
        profile = _load_profile(args)
        print(json.dumps(profile.model_dump(mode="json"), indent=2))  # SecretStr dumps as ***
        return EXIT_OK
    import getpass

    from core.errors import ConfigError

    profile_name = args.profile or "default"
    section, setting = _KEYRING_SETTING[args.kind]
    username = f"{profile_name}-{args.kind}"
    if sys.stdin.isatty():
        secret = getpass.getpass(f"{args.kind} for profile {profile_name} (not echoed): ")
    else:
        secret = sys.stdin.readline()
    secret = secret.strip()
    if not secret:
        raise ConfigError("no secret given on standard input; nothing was stored.")
    try:
        import keyring
        import keyring.errors

        keyring.set_password(_KEYRING_SERVICE, username, secret)
    except keyring.errors.KeyringError as exc:
        raise ConfigError(
            f"the OS keyring refused the secret ({type(exc).__name__}).",
            hint="Unlock or install a keyring (e.g. gnome-keyring), or use a 0600 file.",
        ) from None
    table = f"[{section}]" if profile_name == "default" else f"[profiles.{profile_name}.{section}]"
    print(f"stored in the OS keyring as {_KEYRING_SERVICE}:{username}. In config.toml:")
    print(f"  {table}")
    print(f'  {setting} = "{_KEYRING_SERVICE}:{username}"')
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    import asyncio
    from dataclasses import asdict
    from pathlib import Path

    from core.config import load_settings
    from core.doctor import run_doctor

    settings = load_settings(Path(args.config).expanduser() if args.config else None)
    profile = settings.resolve(args.profile)
    report = asyncio.run(run_doctor(profile, config_path=settings._toml_path))
    if args.json:
        print(
            json.dumps(
                {
                    "profile": report.profile,
                    "ok": report.ok,
                    "checks": [asdict(c) for c in report.checks],
                },
                indent=2,
            )
        )
    else:
        width = max(len(c.name) for c in report.checks)
        print(f"labdeck doctor — profile {report.profile}")
        for check in report.checks:
            print(f"  {check.outcome:<4}  {check.name.ljust(width)}  {check.detail}")
            if check.fix and check.outcome in ("FAIL", "warn"):
                print(f"        {' ' * width}  fix: {check.fix}")
        print("all checks passed" if report.ok else "some checks FAILED")
    return EXIT_OK if report.ok else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from core.errors import LabdeckError

    try:
        if args.command is None:
            return _cmd_dashboard(args, demo=False)
        if args.command == "demo":
            return _cmd_dashboard(args, demo=True)
        if args.command == "mcp":
            return _cmd_mcp(args)
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "call":
            return _cmd_call(args)
        if args.command == "ops":
            return _cmd_ops(args)
        if args.command == "sim":
            return _cmd_sim(args)
        if args.command == "doctor":
            return _cmd_doctor(args)
        if args.command == "audit":
            return _cmd_audit(args)
        if args.command == "config":
            return _cmd_config(args)
    except LabdeckError as error:
        _print_error(error, as_json=False)
        return _exit_code(error)
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
