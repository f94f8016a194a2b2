"""A dashboard view that fetches its own data, and only while a person can see it.

The refresh loop reads ``/cluster/resources`` once per cycle for the guests, nodes and pools
views. Everything else (storage, TrueNAS, tasks, activity, ...) costs requests of its own, so
those views load when their tab is shown and after each refresh while it stays shown; hidden,
they cost nothing.

Subclasses implement :meth:`load` (fetch through ``self.app.service`` and show the result)
and may override :meth:`focus_target`. An error escaping ``load`` is a bug: the app's worker
handler shows it; expected failures (``LabdeckError``) are the subclass's to show as text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widget import Widget
from textual.worker import Worker

if TYPE_CHECKING:
    from tui.app import LabdeckApp


class LazyView(Widget):
    """Base class: ``reload()`` runs ``load()`` in an exclusive worker of its own group."""

    app: LabdeckApp

    async def load(self) -> None:
        raise NotImplementedError

    def reload(self) -> Worker[None]:
        """Fetch again; a load still running for this view is cancelled first."""
        group = f"view-{self.id or type(self).__name__}"
        return self.run_worker(self.load(), group=group, exclusive=True, exit_on_error=False)

    def focus_target(self) -> Widget:
        """The widget that takes the focus when the view's tab is shown."""
        return self
