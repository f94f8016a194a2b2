"""The person's dashboard preferences: a kept theme, a keymap from config, palette jumps.

The theme store writes under a temporary state dir; apps run against the session ``sim``
(read-only: nothing here changes the cluster; a remapped stop key is refused by policy).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from textual.pilot import Pilot

from core.config import TuiSettings, load_settings
from core.errors import ConfigError
from core.service import Labdeck
from tests.support.tui import FROZEN, settle, until
from tui.app import LabdeckApp
from tui.prefs import ThemeStore, known_binding_ids, unknown_keymap_ids
from tui.screens.help import HelpScreen
from tui.widgets.guest_table import GuestTable
from tui.widgets.node_table import NodeTable
from tui.widgets.pool_tree import PoolTree

RUNNING = "107"  # home-assistant in the seed-7 cluster


def make_app(service: Labdeck, **kwargs: object) -> LabdeckApp:
    app = LabdeckApp(service, refresh_interval=3600.0, clock=lambda: FROZEN, **kwargs)  # type: ignore[arg-type]
    # keep every notification: Textual drops them once their timeout passes, and a busy
    # machine can take longer than that to settle
    seen: list[str] = []
    notify = app.notify

    def recording(message: str, *, title: str = "", **options: object) -> None:
        seen.append(f"{title}: {message}")
        notify(message, title=title, **options)  # type: ignore[arg-type]

    app.notify = recording  # type: ignore[method-assign,assignment]
    app.seen = seen  # type: ignore[attr-defined]
    return app


def notifications(app: LabdeckApp) -> list[str]:
    return list(app.seen)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the theme store


def test_theme_store_prefers_the_last_pick_until_the_config_changes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tui.json"
    assert ThemeStore(path).initial_theme() is None  # nothing picked, nothing configured
    assert ThemeStore(path, config_theme="nord").initial_theme() == "nord"
    ThemeStore(path, config_theme="nord").save("gruvbox")
    assert ThemeStore(path, config_theme="nord").initial_theme() == "gruvbox"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"theme": "gruvbox", "config_theme": "nord"}
    # the person edited [tui] theme after the pick: the newer choice (the config) wins
    assert ThemeStore(path, config_theme="dracula").initial_theme() == "dracula"
    assert not list(path.parent.glob(".tui-*"))  # no temporary file left behind


def test_a_damaged_state_file_falls_back_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "tui.json"
    path.write_text("{not json")
    assert ThemeStore(path, config_theme="nord").initial_theme() == "nord"
    path.write_text('["a list"]')
    assert ThemeStore(path, config_theme=None).initial_theme() is None


async def test_theme_picked_in_the_palette_is_kept_for_the_next_start(
    sim, make_service, tmp_path: Path
) -> None:
    store = ThemeStore(tmp_path / "tui.json", config_theme="nord")
    app = make_app(make_service(sim, face="tui"), themes=store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == "nord"  # [tui] theme applies at start
        assert not store.path.exists()  # starting writes nothing
        await palette_go(pilot, "theme", expect="Change the current theme")
        await pilot.press(*"gruvbox")  # Textual's theme picker, a second palette
        await until(pilot, lambda: palette_offers(app, "gruvbox"))
        await pilot.press("enter")
        await until(pilot, lambda: store.path.exists())
        assert app.theme == "gruvbox"
    assert json.loads(store.path.read_text())["theme"] == "gruvbox"

    again = make_app(make_service(sim, face="tui"), themes=ThemeStore(store.path, "nord"))
    async with again.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert again.theme == "gruvbox"


async def test_an_unknown_theme_is_reported_and_the_default_kept(
    sim, make_service, tmp_path: Path
) -> None:
    store = ThemeStore(tmp_path / "tui.json", config_theme="no-such-theme")
    app = make_app(make_service(sim, face="tui"), themes=store)
    default = app.theme
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == default
        [message] = [n for n in notifications(app) if n.startswith("Theme")]
        assert "no-such-theme" in message and "ctrl+p, 'Theme'" in message


async def test_without_a_store_nothing_is_restored_or_written(
    sim, make_service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tests and snapshots build LabdeckApp without a store: the person's state is not read
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    app = make_app(make_service(sim, face="tui"))
    default = app.theme
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.theme = "nord"
        await pilot.pause()
    assert app.theme == "nord" and default != "nord"
    assert not list(tmp_path.rglob("*.json"))


# ---------------------------------------------------------------- the keymap


def test_known_binding_ids_cover_every_screen_even_unopened_ones() -> None:
    known = known_binding_ids()
    for binding_id in ("app.quit", "app.help", "view.guests", "guest.stop", "guests.filter",
                       "help.close"):  # fmt: skip
        assert binding_id in known
    assert unknown_keymap_ids({"guest.stop": "ctrl+k", "guest.stpo": "x"}) == ["guest.stpo"]


async def test_keymap_from_config_remaps_keys_and_the_help_shows_them(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"), keymap={"guest.stop": "ctrl+k,f9"})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert not notifications(app)  # every id was known
        screen = app.screen_stack[0]
        guests = screen.query_one(GuestTable)
        guests.select_vmid(int(RUNNING))
        await pilot.pause()
        await pilot.press("K")  # the old key does nothing now
        await settle(pilot)
        assert not notifications(app)
        await pilot.press("ctrl+k")  # the new one asks the core, which refuses: read-only
        await until(pilot, lambda: bool(notifications(app)))
        [message] = notifications(app)
        assert message.startswith("Stop ") and "refused" in message
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        listed = {b.id: keys for _, rows in app.screen.sections for keys, b in rows}
        assert listed["guest.stop"] == "^k, f9"
        assert listed["guest.start"] == "S"  # not remapped


async def test_unknown_keymap_ids_are_reported_with_the_known_ones(sim, make_service) -> None:
    keymap = {"guest.stpo": "ctrl+k", "view.nodes": "n"}
    app = make_app(make_service(sim, face="tui"), keymap=keymap)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        [message] = notifications(app)
        assert message.startswith("Keymap: Unknown binding ids in [tui] keymap: guest.stpo.")
        assert "Known ids:" in message and "guest.stop" in message
        assert app.keymap_in_use == {"view.nodes": "n"}  # the known entries still apply
        await pilot.press("n")
        await pilot.pause()
        assert app.screen_stack[0].active_view == "nodes"  # type: ignore[attr-defined]


def test_tui_table_is_read_from_the_config_file(tmp_path: Path, monkeypatch) -> None:
    for name in ("LABDECK_TUI_THEME", "LABDECK_TUI_KEYMAP", "LABDECK_TUI_REFRESH_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.toml"
    config.write_text(
        '[tui]\ntheme = "nord"\nrefresh_interval = 2.5\n'
        '[tui.keymap]\n"guest.stop" = "ctrl+k"\n"app.help" = "f1,question_mark"\n'
    )
    tui = load_settings(config).tui
    assert tui == TuiSettings(
        theme="nord",
        refresh_interval=2.5,
        keymap={"guest.stop": "ctrl+k", "app.help": "f1,question_mark"},
    )
    monkeypatch.setenv("LABDECK_TUI_THEME", "dracula")
    assert load_settings(config).tui.theme == "dracula"


def test_the_cli_hands_the_tui_table_and_the_state_file_to_the_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labdeck.cli import _dashboard_options

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    tui = TuiSettings(theme="nord", keymap={"guest.stop": "ctrl+k"}, refresh_interval=2.0)
    options = _dashboard_options(tui)
    assert options["refresh_interval"] == 2.0
    assert options["keymap"] == {"guest.stop": "ctrl+k"}
    themes = options["themes"]
    assert themes.path == tmp_path / "labdeck" / "tui.json"  # the state dir, not the config
    assert themes.config_theme == "nord"


@pytest.mark.parametrize(
    ("table", "complaint"),
    [('refresh_interval = 0.1', "tui.refresh_interval"),
     ('keymap = { "guest.stop" = " , " }', "give one key or several"),
     ('colour = "red"', "tui.colour")],
)  # fmt: skip
def test_bad_tui_settings_are_refused_with_where_and_why(
    tmp_path: Path, table: str, complaint: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[tui]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert complaint in str(caught.value)


# ---------------------------------------------------------------- palette jumps


def palette_offers(app: LabdeckApp, text: str) -> bool:
    """The palette's first hit holds ``text`` (its search runs in the background)."""
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    if not isinstance(app.screen, CommandPalette):
        return False
    options = app.screen.query_one(OptionList)
    first = str(options.get_option_at_index(0).prompt) if options.option_count else ""
    return text.lower() in first.lower()


async def palette_go(pilot: Pilot[None], query: str, expect: str | None = None) -> None:
    """ctrl+p, type ``query``, wait for a first hit holding ``expect`` (or the query), enter."""
    await pilot.press("ctrl+p")
    await pilot.press(*query)
    await until(pilot, lambda: palette_offers(pilot.app, expect or query))  # type: ignore[arg-type]
    await pilot.press("enter")
    await pilot.pause()


async def test_palette_jumps_to_a_node_by_name(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        nodes = app.screen_stack[0].query_one(NodeTable)
        assert nodes.current_key == "pve1"
        await palette_go(pilot, "go to node pve3")
        assert app.screen_stack[0].active_view == "nodes"  # type: ignore[attr-defined]
        assert nodes.current_key == "pve3"
        assert nodes.has_focus


async def test_palette_jumps_to_a_pool_by_name(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await palette_go(pilot, "go to pool media")
        assert app.screen_stack[0].active_view == "pools"  # type: ignore[attr-defined]
        tree = app.screen_stack[0].query_one(PoolTree)
        assert tree.cursor_node is not None and tree.cursor_node.data == "media"
        assert tree.has_focus


async def test_palette_jumps_to_a_truenas_dataset_by_name(sim, make_service) -> None:
    from tui.widgets.truenas_storage import DatasetTree

    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await palette_go(pilot, "go to dataset tank/media/photos")
        assert app.screen_stack[0].active_view == "truenas"  # type: ignore[attr-defined]
        tree = app.screen_stack[0].query_one(DatasetTree)
        await until(pilot, lambda: tree.dataset == "tank/media/photos")  # once the view loaded
        assert tree.has_focus


async def test_palette_lists_nodes_and_pools_with_what_they_hold(sim, make_service) -> None:
    from tui.commands import LabdeckCommands

    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        provider = LabdeckCommands(app.screen)
        await provider.startup()  # what the palette does as it opens: fetch the datasets
        places = {text: help_text for text, _, help_text in provider._places()}
        assert set(places) >= {"Go to node pve1", "Go to node pve2", "Go to node pve3",
                               "Go to pool prod", "Go to pool media", "Go to pool lab"}  # fmt: skip
        assert places["Go to node pve1"].startswith("node, online, ")
        assert places["Go to pool media"].startswith("pool, ")
        assert places["Go to dataset tank/media/photos"] == "TrueNAS dataset"


# ---------------------------------------------------------------- the README stays true


def test_readme_screenshots_exist_and_its_keymap_example_names_real_ids() -> None:
    import re
    import tomllib

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\((tests/__snapshots__/[^)]+\.svg)\)", readme)
    assert len(images) >= 5
    root = Path(__file__).resolve().parents[1]
    assert [image for image in images if not (root / image).is_file()] == []
    example = next(block for block in re.findall(r"```toml\n(.*?)```", readme, re.S)
                   if "[tui.keymap]" in block)  # fmt: skip
    keymap = tomllib.loads(example)["tui"]["keymap"]
    assert unknown_keymap_ids(keymap) == []
    assert TuiSettings(**tomllib.loads(example)["tui"]).keymap == keymap
