"""What the dashboard looks like, as SVG snapshots (``--snapshot-update`` after a look).

Deterministic by construction: the seeded simulator with frozen metrics (``dynamic=False``,
the session ``sim``), a frozen clock for the header, and nothing on screen that depends on
the random port or temporary paths. ``snap_compare`` runs each app in its own event loop;
the service opens its connections lazily in that loop and the app closes them on exit.
"""

from __future__ import annotations

from tests.support.tui import dashboard, loaded

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
    assert snap_compare(app, press=["2"], terminal_size=WIDE, run_before=loaded)


def test_pools_view(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, press=["3"], terminal_size=WIDE, run_before=loaded)


def test_filter_applied(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    keys = ["slash", *"k3s", "enter", "down"]
    assert snap_compare(app, press=keys, terminal_size=WIDE, run_before=loaded)


def test_confirmation_modal(snap_compare, sim, make_service) -> None:
    # writes allowed, so the question is asked; the snapshot never answers it
    app = dashboard(make_service, sim, allow_writes=True)
    keys = ["down", "down", "K"]
    assert snap_compare(app, press=keys, terminal_size=NARROW, run_before=loaded)


def test_help_screen(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, press=["f1"], terminal_size=WIDE, run_before=loaded)
