"""What the dashboard says where a backend is missing: a profile may have Proxmox VE, TrueNAS
or both. The tabs of a missing backend stay (their keys keep their meaning) and say how to
add it, in the words of the README's configuration sections."""

from __future__ import annotations

from urllib.parse import urlsplit

from rich.text import Text
from textual.widgets import Static

from core.config import Profile


def _section(profile: Profile, backend: str) -> str:
    return f"[{backend}]" if profile.name == "default" else f"[profiles.{profile.name}.{backend}]"


def truenas_host(profile: Profile) -> str | None:
    """The host part of ``[truenas] url`` (a bare host name is allowed there too)."""
    url = profile.truenas.url
    if not url:
        return None
    return urlsplit(url if "//" in url else f"wss://{url}").hostname or url


def truenas_setup_text(profile: Profile) -> Text:
    text = Text("No TrueNAS system configured", style="bold")
    text.append(f" for profile {profile.name!r}.\n\n", style="")
    text.append(f"Add to config.toml:\n\n  {_section(profile, 'truenas')}\n")
    text.append('  url = "wss://truenas.example.lan/api/current"\n')
    text.append('  api_key_file = "~/.config/labdeck/truenas-key"   # mode 0600\n\n')
    text.append("or keep the API key in the OS keyring: ")
    text.append("labdeck config set-token --kind truenas-api-key", style="bold")
    text.append(" (it prints the api_key_keyring line to add).\n")
    text.append("TRUENAS_URL and TRUENAS_API_KEY work too; ")
    text.append("labdeck doctor", style="bold")
    text.append(" checks the result. ")
    text.append("labdeck demo", style="bold")
    text.append(" shows this view on a simulated system.")
    return text


def pve_missing_text(profile: Profile) -> Text:
    text = Text("No Proxmox VE cluster configured", style="bold")
    text.append(f" for profile {profile.name!r}.\n\n", style="")
    text.append(f"Add a {_section(profile, 'pve')} section to config.toml ")
    text.append("(host, user, token_name and token_file; see the README), then check it with ")
    text.append("labdeck doctor", style="bold")
    text.append(".")
    if profile.truenas.configured:
        text.append("\nThe Guests view lists the TrueNAS system's VMs; its storage is in the ")
        text.append("TrueNAS view (6).")
    return text


class NotConfigured(Static):
    """A tab's whole content when its backend is missing."""
