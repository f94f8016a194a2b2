"""What the dashboard looks like, as SVG snapshots (``--snapshot-update`` after a look).

Deterministic by construction: the seeded simulator with frozen metrics (``dynamic=False``,
the session ``sim``), a frozen clock for the header, and nothing on screen that depends on
the random port or temporary paths. ``snap_compare`` runs each app in its own event loop;
the service opens its connections lazily in that loop and the app closes them on exit.
"""

from __future__ import annotations

from tests.support.tui import dashboard, loaded, pressing, showing, shown, viewing
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen

WIDE = (120, 40)
NARROW = (80, 24)


def test_guests_view(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, terminal_size=WIDE, run_before=loaded)


def test_guests_view_narrow(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, terminal_size=NARROW, run_before=loaded)


def test_nodes_view(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, terminal_size=WIDE, run_before=pressing(("2", viewing("nodes"))))


def test_pools_view(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, terminal_size=WIDE, run_before=pressing(("3", viewing("pools"))))


def test_filter_applied(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    keys = pressing((["slash", *"k3s", "enter", "down"], shown))
    assert snap_compare(app, terminal_size=WIDE, run_before=keys)


def test_confirmation_modal(snap_compare, sim, make_service) -> None:
    # writes allowed, so the question is asked; the snapshot never answers it
    app = dashboard(make_service, sim, allow_writes=True)
    keys = pressing((["down", "down", "K"], showing(ConfirmScreen)))
    assert snap_compare(app, terminal_size=NARROW, run_before=keys)


def test_help_screen(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, terminal_size=WIDE, run_before=pressing(("f1", showing(HelpScreen))))
