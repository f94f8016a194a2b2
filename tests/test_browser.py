"""``labdeck serve``: the dashboard in a real browser, end to end.

``labdeck serve --demo`` runs as a subprocess; headless Chromium (Debian's package) loads
the page and is driven over the DevTools protocol. xterm.js paints the terminal on a
canvas, so the test reads what the dashboard sent from the page's websocket frames (as
the browser received them) until a guest of the demo cluster appears, then lets the
browser paint and takes a screenshot. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from labdeck.demo import DEMO_SEED
from labdeck.serve import dashboard_command, is_loopback, to_toml
from simulator.seed import build_cluster

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium); `make test` installs it "
    "on CI, or: apt-get install chromium",
)
# the flags that keep Chromium quiet on a closed network (it hangs without them)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--window-size=1280,800",
]  # fmt: skip
WAIT_S = 90.0  # bound of every wait below; a healthy run needs a few seconds


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    """No person's config, state or cluster variables leak into the served dashboard."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LABDECK_", "PROXMOX_", "TRUENAS_", "XDG_"))
    }
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "HOME"):
        env[name] = str(tmp_path / name.lower())
    return env


def _lines(stream: Any) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``labdeck serve --demo --port 0``; yields its URL (from its first line) and process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "labdeck", "serve", "--demo", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_isolated_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    output = _lines(process.stdout)
    try:
        url, seen = None, []
        deadline = time.monotonic() + WAIT_S
        while url is None and time.monotonic() < deadline and process.poll() is None:
            try:
                line = output.get(timeout=1.0)
            except queue.Empty:
                continue
            seen.append(line)
            if line.startswith("labdeck: dashboard at "):
                url = line.split(" at ", 1)[1].split()[0].rstrip("/")
        assert url is not None, f"labdeck serve did not start: {''.join(seen)}"
        _wait_for_http(url)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _wait_for_http(url: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            if httpx.get(url + "/", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered"
        time.sleep(0.2)


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page target."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.frames: list[bytes] = []  # websocket payloads the page received

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=WAIT_S))
            if message.get("method") == "Network.webSocketFrameReceived":
                response = message["params"]["response"]
                data = response["payloadData"]
                binary = response["opcode"] == 2  # binary frames arrive base64-encoded
                self.frames.append(base64.b64decode(data) if binary else data.encode())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return dict(message["result"])

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result["result"].get("value")

    def received_text(self) -> str:
        return b"".join(self.frames).decode("utf-8", errors="replace")


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[DevTools]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = await asyncio.create_subprocess_exec(
        str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=_isolated_env(tmp_path),  # its crash-report folder goes under XDG_CONFIG_HOME
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes its port here
        deadline = time.monotonic() + WAIT_S
        while not (port_file.exists() and port_file.read_text().strip()):
            assert browser.returncode is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium never opened its DevTools port"
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with httpx.AsyncClient() as client:
            targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            yield DevTools(ws)
    finally:
        if browser.returncode is None:
            browser.terminate()
        try:
            await asyncio.wait_for(browser.wait(), timeout=20)
        except TimeoutError:
            browser.kill()
            await asyncio.wait_for(browser.wait(), timeout=20)


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct rows of an 8-bit PNG (no Pillow here)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height, depth, colour_type = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    channels = 3 if colour_type == 2 else 4
    stride = 1 + width * channels
    # unfiltered bytes would need PNG's filters undone; distinct filtered rows still tell a
    # uniform image (a handful) from a screen of text (hundreds)
    rows = {raw[i * stride + 1 : (i + 1) * stride] for i in range(height)}
    return width, height, len(rows)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@needs_chromium
async def test_served_dashboard_shows_the_guests_in_chromium(served, tmp_path) -> None:
    url, _ = served
    guest_names = [g.name for g in build_cluster(3, 24, DEMO_SEED).guests.values()]
    async with chromium(tmp_path) as page:
        await page.call("Network.enable")
        await page.call("Page.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280, height=800, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        await page.call("Page.navigate", url=url + "/")
        deadline = time.monotonic() + WAIT_S
        while not all(name in page.received_text() for name in guest_names[:5]):
            assert time.monotonic() < deadline, page.received_text()[-2000:]
            await asyncio.sleep(0.25)
            await page.call("Runtime.evaluate", expression="0")  # collects frames meanwhile
        # the intro dialog gives way once output arrives; then two frames to paint it
        assert await page.evaluate("document.body.classList.contains('-first-byte')")
        await page.evaluate(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        shot = await page.call("Page.captureScreenshot", format="png")
    png = base64.b64decode(shot["data"])
    (tmp_path / "dashboard.png").write_bytes(png)
    width, height, distinct_rows = png_size_and_colours(png)
    assert (width, height) == (1280, 800)
    assert distinct_rows > 100  # rows of text, not a blank or uniform page
    assert "labdeck-demo" in page.received_text()  # the cluster name in the header


@needs_chromium
async def test_no_secret_in_any_command_line_of_the_served_tree(served, tmp_path) -> None:
    """The demo token reaches each tab's dashboard in a 0600 file, never in argv."""
    url, process = served
    async with chromium(tmp_path) as page:
        await page.call("Network.enable")
        await page.call("Page.navigate", url=url + "/")
        deadline = time.monotonic() + WAIT_S
        while "labdeck-demo" not in page.received_text():  # a tab's dashboard is running
            assert time.monotonic() < deadline
            await asyncio.sleep(0.25)
            await page.call("Runtime.evaluate", expression="0")
        tree = [process.pid, *_descendants(process.pid)]
        command_lines = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in tree}
        tab = next(
            pid for pid, line in command_lines.items()
            if b"labdeck" in line and b"serve" not in line and b"/bin/sh" not in line
        )  # fmt: skip
        environ = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{tab}/environ").read_text().split("\0")
            if "=" in item
        )
        config = Path(environ["LABDECK_CONFIG"])
        assert oct(config.stat().st_mode & 0o777) == oct(0o600)
        secret = next(
            line.split("=", 1)[1].strip().strip('"')
            for line in config.read_text().splitlines()
            if line.startswith("token_value")
        )
        assert len(secret) > 8
        # pids only: a failure must not print the secret it found
        leaking = [pid for pid, line in command_lines.items() if secret.encode() in line]
        assert leaking == []


def test_serve_without_a_cluster_says_how_to_configure_one(tmp_path) -> None:
    env = _isolated_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "labdeck", "serve", "--port", "0"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "labdeck has no cluster configured yet" in result.stderr
    assert "labdeck: dashboard at" not in result.stdout  # nothing was served


def test_serve_help_says_there_is_no_authentication() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labdeck", "serve", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    text = " ".join(result.stdout.split())
    assert "no authentication" in text
    assert "default loopback" in text


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.0.2.7", False),
     ("pve.example.lan", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_non_loopback_address_is_served_only_with_a_warning(monkeypatch, capsys) -> None:
    # A stand-in for textual-serve's Server: the test must not listen on a public address
    # (this machine's network rules), and the warning is printed before any listening.
    import textual_serve.server

    from labdeck.serve import serve

    started: list[tuple[str, str, int, str]] = []

    class NoListen:
        def __init__(self, command: str, *, host: str, port: int, title: str, public_url: str):
            self.args = (command, host, port, public_url)

        def serve(self) -> None:
            started.append(self.args)

    monkeypatch.setattr(textual_serve.server, "Server", NoListen)
    serve(host="0.0.0.0", port=8080, command="labdeck")
    out, err = capsys.readouterr()
    assert "not loopback" in err and "no authentication" in err
    assert started == [("labdeck", "0.0.0.0", 8080, "http://0.0.0.0:8080")]
    serve(host="::1", port=8081, command="labdeck", url="https://dash.example.lan")
    out, err = capsys.readouterr()
    assert err == ""
    assert "dashboard at https://dash.example.lan/" in out
    assert started[-1] == ("labdeck", "::1", 8081, "https://dash.example.lan")


def test_dashboard_command_is_this_python_and_quotes_its_words(tmp_path) -> None:
    odd = tmp_path / "my config.toml"
    command = dashboard_command(config=str(odd), profile="lab")
    assert command.startswith(sys.executable)
    assert "-m labdeck" in command
    assert f"'{odd}'" in command  # one shell word despite the space
    assert command.endswith("--profile lab")


def test_demo_config_is_valid_toml_with_inline_keymap() -> None:
    import tomllib

    text = to_toml(
        {
            "pve": {"host": "127.0.0.1", "port": 8006, "token_value": 'a"b\\c', "x": None},
            "tui": {"keymap": {"guest.stop": "ctrl+k"}, "refresh_interval": 2.5},
            "policy": {"allow_writes": True},
        }
    )
    assert tomllib.loads(text) == {
        "pve": {"host": "127.0.0.1", "port": 8006, "token_value": 'a"b\\c'},
        "tui": {"keymap": {"guest.stop": "ctrl+k"}, "refresh_interval": 2.5},
        "policy": {"allow_writes": True},
    }


def test_demo_config_reaches_the_simulator_and_keeps_the_tui_table(sim, tmp_path) -> None:
    from core.config import TuiSettings, load_settings
    from labdeck.serve import demo_config, write_private

    tui = TuiSettings(theme="nord", keymap={"guest.stop": "ctrl+k"})
    path = write_private(tmp_path / "demo.toml", demo_config(sim, tui))
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the token
    settings = load_settings(path)  # refuses a secret in a file others can read
    profile = settings.resolve()
    assert profile.name == "demo"
    assert (profile.pve.host, profile.pve.port) == (sim.host, sim.port)
    assert profile.pve.token_value is not None
    assert profile.pve.token_value.get_secret_value() == sim.token.secret
    assert profile.truenas.url == sim.truenas_url
    assert profile.policy.allow_writes
    assert settings.tui == tui
    with pytest.raises(FileExistsError):  # never follows or reuses a planted file
        write_private(path, "x")


def test_chromium_is_where_the_makefile_puts_it() -> None:
    """`make test` installs Debian's chromium on CI; the browser tests run there, not skip."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "apt-get install -y --no-install-recommends chromium" in makefile
    if os.environ.get("CI"):
        assert CHROMIUM.exists() and shutil.which(str(CHROMIUM))
