"""Settings: one TOML file, ``LABDECK_*`` env vars, and the variables of the servers we replace.

Precedence (highest first): values passed in by the command line, ``LABDECK_*`` env vars,
``PROXMOX_*`` / ``TRUENAS_*`` env vars, ``$XDG_CONFIG_HOME/labdeck/config.toml``, defaults.

The top-level ``[pve]`` / ``[truenas]`` / ``[policy]`` tables are the default profile; more
clusters go in ``[profiles.NAME.pve]`` and so on. Env vars apply to the default profile.
Secrets are ``SecretStr`` and are resolved only when a client is built (see ``core.secrets``).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.errors import ConfigError

DEFAULT_PROFILE = "default"
_SECRET_KEYS = frozenset({"token_value", "password", "api_key", "key_passphrase"})
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FINGERPRINT = re.compile(r"^(?:[0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$")


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "labdeck"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "labdeck"


def default_config_path() -> Path:
    override = os.environ.get("LABDECK_CONFIG")
    return Path(override).expanduser() if override else config_dir() / "config.toml"


def normalise_fingerprint(value: str) -> str:
    """``ab:cd:...`` or ``abcd...`` -> ``AB:CD:...`` (the form PVE's GUI shows)."""
    text = value.strip()
    if not _FINGERPRINT.match(text):
        raise ValueError(
            "a SHA-256 fingerprint is 32 hex bytes, e.g. 'AB:CD:...' (64 hex digits with or "
            "without colons)"
        )
    hexdigits = text.replace(":", "").upper()
    return ":".join(hexdigits[i : i + 2] for i in range(0, 64, 2))


class PveSshSettings(BaseModel):
    """``pct exec`` over SSH for LXC containers (the PVE API has no exec for them). Opt-in.

    pct needs root on the node. Least privilege: a dedicated key for a non-root user with
    ``sudo = true`` and a sudoers rule for ``/usr/sbin/pct exec *`` only (README).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False,
        description="Run commands in LXC containers with `pct exec` over SSH to the"
        " container's node. Off: containers refuse commands.",
    )
    user: str = Field(
        default="root",
        description="SSH user on the nodes. pct runs as root only; a non-root user needs"
        " sudo = true and a sudoers rule (README).",
    )
    sudo: bool = Field(
        default=False,
        description="Run `sudo -n pct exec ...` (a non-root user allowed /usr/sbin/pct only).",
    )
    port: int = Field(default=22, ge=1, le=65535, description="sshd port of the nodes.")
    key_file: Path | None = Field(
        default=None,
        description="Private key for the nodes (OpenSSH or PEM format); must be mode 0600.",
    )
    key_passphrase: SecretStr | None = Field(
        default=None,
        description="Passphrase of an encrypted key_file (prefer key_passphrase_file or"
        " key_passphrase_keyring).",
    )
    key_passphrase_file: Path | None = Field(
        default=None, description="File holding the key's passphrase; must be mode 0600."
    )
    key_passphrase_keyring: str | None = Field(
        default=None, description="OS keyring entry holding the key's passphrase."
    )
    known_hosts: str = Field(
        default="~/.ssh/known_hosts",
        description="Host keys of the nodes. Always checked: an unknown or changed host key"
        " is refused, never accepted.",
    )
    hosts: dict[str, str] = Field(
        default_factory=dict,
        description='Address by node name, e.g. { pve1 = "10.0.0.11" }, for node names'
        " that do not resolve; other nodes are reached by name.",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Seconds to connect and log in to a node."
    )

    @field_validator("user")
    @classmethod
    def _check_ssh_user(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", value):
            raise ValueError("an SSH user is a login name on the node, e.g. 'root'")
        return value

    @field_validator("hosts")
    @classmethod
    def _check_hosts(cls, value: dict[str, str]) -> dict[str, str]:
        for node, address in value.items():
            if not address.strip() or any(c.isspace() or c == "/" for c in address.strip()):
                raise ValueError(f"{node!r}: give a host name or IP address, e.g. '10.0.0.11'")
        return {node: address.strip() for node, address in value.items()}


class PveSettings(BaseModel):
    """How to reach and authenticate to one Proxmox VE cluster."""

    model_config = ConfigDict(extra="forbid")

    host: str | None = Field(default=None, description="Host name or IP of any cluster node.")
    port: int = Field(default=8006, ge=1, le=65535, description="pveproxy port.")
    user: str | None = Field(default=None, description="Token owner, e.g. 'labdeck@pve'.")
    token_name: str | None = Field(default=None, description="API token id, e.g. 'dashboard'.")
    token_value: SecretStr | None = Field(
        default=None, description="Token secret (prefer token_file or token_keyring)."
    )
    token_file: Path | None = Field(
        default=None, description="File holding the token secret; must be mode 0600."
    )
    token_keyring: str | None = Field(
        default=None, description="OS keyring entry 'service' or 'service:username'."
    )
    password: SecretStr | None = Field(
        default=None, description="Password for ticket login when no token is set."
    )
    password_file: Path | None = Field(
        default=None, description="File holding the password; must be mode 0600."
    )
    password_keyring: str | None = Field(
        default=None, description="OS keyring entry holding the password."
    )
    verify_ssl: bool = Field(default=True, description="Verify the TLS certificate.")
    allow_insecure_transport: bool = Field(
        default=False,
        description="Accept a plain 'http://' host (e.g. behind a TLS-terminating proxy on the"
        " same machine). The token then crosses the network in clear; warned about every run.",
    )
    ca_bundle: Path | None = Field(default=None, description="PEM file of the cluster's CA.")
    fingerprint: str | None = Field(
        default=None, description="SHA-256 pin of the server certificate."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=600, description="Per-request timeout.")
    ssh: PveSshSettings = Field(
        default_factory=PveSshSettings,
        description="`pct exec` over SSH for commands in LXC containers (opt-in).",
    )

    #: the host was given as http:// and allow_insecure_transport allowed it
    _plain_http: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_plain_http(
        cls, data: Any, handler: ModelWrapValidatorHandler[PveSettings]
    ) -> PveSettings:
        """``http://`` is never turned into https quietly: it is refused unless allowed."""
        host = data.get("host") if isinstance(data, dict) else None
        plain = isinstance(host, str) and host.strip().lower().startswith("http://")
        settings = handler(data)
        if plain and not settings.allow_insecure_transport:
            raise ValueError(
                f"host {host!r} uses plain http: Proxmox VE serves its API only over https, and"
                " over http the API token would cross the network in clear. Use https:// (with"
                " ca_bundle or fingerprint for a self-signed certificate), or set"
                " allow_insecure_transport = true if a proxy you trust terminates TLS"
            )
        if plain:
            settings._plain_http = True
        return settings

    @property
    def scheme(self) -> str:
        return "http" if self._plain_http else "https"

    @field_validator("host")
    @classmethod
    def _strip_scheme(cls, value: str | None) -> str | None:
        """Accept ``https://pve:8006`` too, as people paste it from the browser."""
        if value is None:
            return None
        text = value.strip()
        text = re.sub(r"^https?://", "", text, flags=re.IGNORECASE).rstrip("/")
        text = text.removesuffix("/api2/json")
        if text.startswith("["):  # [v6]:port
            text = text[1:].split("]", 1)[0]
        elif text.count(":") == 1:
            text = text.split(":", 1)[0]
        if not text or any(c.isspace() for c in text) or "/" in text:
            raise ValueError(f"{value!r} is not a host name or IP address")
        return text

    @field_validator("user")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]+$", value):
            raise ValueError("a Proxmox user looks like 'name@realm', e.g. 'labdeck@pve'")
        return value

    @field_validator("token_name")
    @classmethod
    def _check_token_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z][A-Za-z0-9.\-_]+$", value):
            raise ValueError("a token id starts with a letter: letters, digits, '.', '-', '_'")
        return value

    @field_validator("fingerprint")
    @classmethod
    def _check_fingerprint(cls, value: str | None) -> str | None:
        return None if value is None else normalise_fingerprint(value)

    @property
    def configured(self) -> bool:
        return self.host is not None

    @property
    def token_id(self) -> str:
        """``user@realm!tokenid`` (or just the user for ticket login) — safe to show."""
        return f"{self.user}!{self.token_name}" if self.token_name else str(self.user)


class TrueNasSettings(BaseModel):
    """How to reach one TrueNAS system (JSON-RPC over WebSocket)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None, description="wss://HOST/api/current (a bare host name works too)."
    )
    api_key: SecretStr | None = Field(
        default=None, description="API key '<id>-<secret>' (prefer api_key_file or the keyring)."
    )
    api_key_file: Path | None = Field(
        default=None, description="File holding the API key; must be mode 0600."
    )
    api_key_keyring: str | None = Field(
        default=None, description="OS keyring entry holding the API key."
    )
    verify_ssl: bool = Field(default=True, description="Verify the TLS certificate.")
    ca_bundle: Path | None = Field(default=None, description="PEM file of the system's CA.")
    fingerprint: str | None = Field(
        default=None, description="SHA-256 pin of the server certificate."
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="Seconds to wait for the answer to one call (a job is followed beyond"
        " it). A change that gets no answer in time may or may not have been applied.",
    )

    @field_validator("fingerprint")
    @classmethod
    def _check_fingerprint(cls, value: str | None) -> str | None:
        return None if value is None else normalise_fingerprint(value)

    @property
    def configured(self) -> bool:
        return self.url is not None


class PolicySettings(BaseModel):
    """What the faces may change. Read-only unless writes are allowed."""

    model_config = ConfigDict(extra="forbid")

    allow_writes: bool = Field(default=False, description="Allow operations that change state.")
    allow_operations: list[str] | None = Field(
        default=None,
        description="When set, only these write operations are allowed (reads always are).",
    )
    protected: list[str] = Field(
        default_factory=list,
        description="What no write may touch. Guests: vmid ('100'), name ('name:db'), tag"
        " ('tag:prod') or pool ('pool:infra'). TrueNAS: 'dataset:tank/prod' (that dataset,"
        " the datasets below it, their snapshots and shares of paths under /mnt/tank/prod),"
        " 'user:alice' (that account) or 'group:builtin_administrators' (who is in it).",
    )

    @field_validator("protected")
    @classmethod
    def _check_protected(cls, value: list[str]) -> list[str]:
        """A mistyped rule would protect nothing, silently: refuse it at start instead."""
        kinds = ("vmid", "name", "tag", "pool", "dataset", "user", "group")
        for rule in value:
            kind, sep, target = rule.partition(":")
            if not sep and rule.strip().isdigit():
                continue
            if not sep or kind.strip().lower() not in kinds or not target.strip():
                raise ValueError(
                    f"{rule!r} is not a protection rule: use a vmid ('100') or KIND:VALUE"
                    f" with KIND one of {', '.join(kinds)}"
                )
        return value


class TuiSettings(BaseModel):
    """The dashboard's look and keys (one table for every profile: they belong to the person)."""

    model_config = ConfigDict(extra="forbid")

    theme: str | None = Field(
        default=None,
        description="Textual theme at start, e.g. 'nord' or 'gruvbox' (ctrl+p, 'Theme' lists"
        " them). A theme picked in the palette is kept until this setting changes.",
    )
    keymap: dict[str, str] = Field(
        default_factory=dict,
        description='Keys by binding id, e.g. { "guest.stop" = "ctrl+k" }; the help screen'
        " (F1) shows the keys in use. Unknown ids are reported at start.",
    )
    refresh_interval: float = Field(
        default=5.0, ge=1.0, le=3600.0, description="Seconds between two cluster refreshes."
    )

    @field_validator("keymap")
    @classmethod
    def _check_keymap(cls, value: dict[str, str]) -> dict[str, str]:
        for binding_id, keys in value.items():
            if not [k for k in keys.split(",") if k.strip()]:
                raise ValueError(f"{binding_id!r}: give one key or several, e.g. 'ctrl+k,f9'")
        return value


class ProfileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pve: PveSettings = Field(default_factory=PveSettings)
    truenas: TrueNasSettings = Field(default_factory=TrueNasSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)


class Profile(BaseModel):
    """One resolved profile: a name plus its sections."""

    name: str
    pve: PveSettings
    truenas: TrueNasSettings
    policy: PolicySettings


class _LegacyEnvSource(PydanticBaseSettingsSource):
    """``PROXMOX_*`` / ``TRUENAS_*``: the variables of ProxmoxMCP and TrueNAS MCP Server."""

    _PVE = {
        "PROXMOX_HOST": "host",
        "PROXMOX_PORT": "port",
        "PROXMOX_USER": "user",
        "PROXMOX_TOKEN_NAME": "token_name",
        "PROXMOX_TOKEN_VALUE": "token_value",
        "PROXMOX_VERIFY_SSL": "verify_ssl",
    }
    _TRUENAS = {
        "TRUENAS_URL": "url",
        "TRUENAS_API_KEY": "api_key",
        "TRUENAS_VERIFY_SSL": "verify_ssl",
    }

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ does the work

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for section, mapping in (("pve", self._PVE), ("truenas", self._TRUENAS)):
            found = {key: os.environ[var] for var, key in mapping.items() if os.environ.get(var)}
            if found:
                values[section] = found
        return values


class Settings(BaseSettings):
    """Everything labdeck reads at start-up. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="LABDECK_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    pve: PveSettings = Field(default_factory=PveSettings)
    truenas: TrueNasSettings = Field(default_factory=TrueNasSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    tui: TuiSettings = Field(default_factory=TuiSettings)
    profiles: dict[str, ProfileSettings] = Field(default_factory=dict)
    profile: str | None = Field(default=None, description="Profile used when none is given.")
    audit_log: Path | None = Field(default=None, description="Audit log path (JSON lines).")

    _toml_path: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = _CURRENT_TOML.get("path")
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _LegacyEnvSource(settings_cls),
        ]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    def profile_names(self) -> list[str]:
        return [DEFAULT_PROFILE, *sorted(self.profiles)]

    def resolve(self, name: str | None = None) -> Profile:
        """The named profile (or the selected/default one)."""
        chosen = name or self.profile or DEFAULT_PROFILE
        if chosen == DEFAULT_PROFILE:
            return Profile(name=chosen, pve=self.pve, truenas=self.truenas, policy=self.policy)
        if chosen not in self.profiles:
            known = ", ".join(self.profile_names())
            raise ConfigError(
                f"no profile named {chosen!r}.",
                hint=f"Known profiles: {known}. Add [profiles.{chosen}.pve] to the config file.",
            )
        section = self.profiles[chosen]
        return Profile(name=chosen, pve=section.pve, truenas=section.truenas, policy=section.policy)


# pydantic-settings builds sources from the class; the path of this load is passed here.
_CURRENT_TOML: dict[str, Path | None] = {"path": None}


def _contains_secret(table: Any) -> bool:
    if isinstance(table, dict):
        return any(
            (key in _SECRET_KEYS and value not in (None, "")) or _contains_secret(value)
            for key, value in table.items()
        )
    return False


def check_config_file(path: Path) -> dict[str, Any]:
    """Parse the file and refuse it when it holds a secret others can read."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}.") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}.", hint="Fix the line it names."
        ) from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if _contains_secret(data) and mode & 0o077:
        raise ConfigError(
            f"config file {path} holds a secret but is readable by others (mode {mode:04o}).",
            hint=f"Run: chmod 600 {path}  (or move the secret to token_file / the keyring).",
        )
    return data


def _describe_validation(exc: ValidationError, origin: str) -> ConfigError:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in err["loc"])
        problems.append(f"{where}: {err['msg']}")
    return ConfigError(
        f"invalid settings ({origin}): " + "; ".join(problems) + ".",
        hint="See README 'Configuration' for the keys and their env vars.",
    )


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the TOML file (if present), the environment and ``overrides``."""
    toml_path = path if path is not None else default_config_path()
    if path is not None and not toml_path.exists():
        raise ConfigError(f"config file {toml_path} does not exist.")
    if toml_path.exists():
        check_config_file(toml_path)
        _CURRENT_TOML["path"] = toml_path
    else:
        _CURRENT_TOML["path"] = None
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise _describe_validation(exc, str(toml_path) + " + environment") from None
    finally:
        _CURRENT_TOML["path"] = None
    for name in settings.profiles:
        if not _PROFILE_NAME.match(name) or name == DEFAULT_PROFILE:
            raise ConfigError(
                f"profile name {name!r} is not allowed.",
                hint="Use letters, digits, '.', '-', '_' (and not 'default').",
            )
    settings._toml_path = toml_path if toml_path.exists() else None
    return settings
