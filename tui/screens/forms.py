"""Action forms of the guest detail screen: snapshot, backup, clone, migrate.

Every form is checked by its operation's own params model (``parse_params``) before
anything is sent, and each problem is shown under the field it names. The call then goes
through ``Labdeck.call`` like any other face's: the policy decides, progress shows while
the task runs, and a failure (task exit status and the last log lines) stays on screen
so the person can fix the form and try again. Success dismisses with the op's result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Select, Static

from core.errors import InvalidInput, LabdeckError, PolicyDenied, TaskFailed
from core.models import Guest, Table
from core.ops import get_operation
from core.service import Labdeck, parse_params
from tui.formatting import guest_label
from tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from tui.app import LabdeckApp

#: log lines of a failed task shown under the error
LOG_TAIL_LINES = 6


def policy_refusal(service: Labdeck, op_name: str, guest: Guest) -> str | None:
    """The policy's refusal of ``op_name`` on ``guest`` (read-only mode, a protected guest,
    an operation not allowed), or None. The policy answers before any request is sent, so
    a person is not asked to fill a form whose call would be refused anyway."""
    op = get_operation(op_name)
    try:
        service.policy.check_operation(op, confirmed=True, how_to_allow=service.how_to_allow)
        service.policy.check_guest(op, guest)
    except PolicyDenied as exc:
        return str(exc)
    return None


def failure_text(exc: LabdeckError) -> str:
    """The error, and for a failed task its exit status and last log lines."""
    if isinstance(exc, TaskFailed) and exc.log_tail:
        return "\n".join([str(exc), *exc.log_tail[-LOG_TAIL_LINES:]])
    return str(exc)


class TaskProgress(Vertical):
    """What runs now: an indeterminate bar and ``doing… 4s · message``; then the outcome."""

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=None, show_eta=False, show_percentage=False)
        yield Static("", classes="task-status", markup=False)

    def on_mount(self) -> None:
        self.display = False
        self.doing = ""

    def start(self, doing: str) -> None:
        self.doing = doing
        self.display = True
        self.query_one(ProgressBar).display = True
        self._say(f"{doing}…")

    def tick(self, elapsed_s: float, message: str) -> None:
        self._say(f"{self.doing}… {elapsed_s:.0f}s · {message}")

    def finish(self, text: str, *, error: bool = False) -> None:
        self.display = True
        self.query_one(ProgressBar).display = False
        self._say(text, error=error)

    def _say(self, text: str, *, error: bool = False) -> None:
        status = self.query_one(".task-status", Static)
        status.update(text)
        status.set_class(error, "-error")


async def run_with_progress(
    service: Labdeck,
    op_name: str,
    params: Mapping[str, Any] | BaseModel,
    *,
    confirmed: bool,
    panel: TaskProgress,
    doing: str,
) -> BaseModel:
    """``service.call`` with its progress reported in ``panel``; errors are raised."""
    panel.start(doing)
    return await service.call(op_name, params, confirmed=confirmed, progress=panel.tick)


def _text(widget: Input) -> str | None:
    return widget.value.strip() or None


def _choice(widget: Select[str]) -> str | None:
    return None if widget.value is Select.NULL else str(widget.value)


class ActionForm(ModalScreen[BaseModel | None]):
    """Base of the forms: fields, their errors, submit, progress, outcome.

    Subclasses set ``OPERATION``, ``TITLE``, ``DOING`` and ``SUBMIT``, yield their fields
    with :meth:`field` in :meth:`fields`, and return the params in :meth:`values`.
    """

    OPERATION: ClassVar[str]
    TITLE: ClassVar[str]
    DOING: ClassVar[str]
    SUBMIT: ClassVar[str]
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="form.cancel",
                tooltip="Close the form without doing anything (not while it runs)."),
        Binding("ctrl+s", "submit", "Submit", id="form.submit",
                tooltip="Check the form and run it (the same as its button)."),
    ]  # fmt: skip

    #: the first field takes the focus (not the scrolling container around the fields)
    AUTO_FOCUS = "#form-fields Input, #form-fields Select, #form-fields Checkbox"

    app: LabdeckApp

    def __init__(self, guest: Guest) -> None:
        super().__init__()
        self.guest = guest
        self.running = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Vertical(id="form-dialog"):
            with VerticalScroll(id="form-fields"):
                yield from self.fields()
            yield TaskProgress(id="form-task")
            with Horizontal(id="form-buttons"):
                yield Button("Cancel", id="form-cancel", variant="default")
                yield Button(self.SUBMIT, id="form-submit", variant="primary")

    def on_mount(self) -> None:
        dialog = self.query_one("#form-dialog")
        dialog.border_title = f"{self.TITLE} · {guest_label(self.guest)}"
        dialog.border_subtitle = "ctrl+s run · escape cancel"

    def field(self, name: str, label: str, widget: Widget, hint: str = "") -> Vertical:
        """A labelled field whose error line is filled when ``name`` is rejected."""
        parts: list[Widget] = [Label(label, classes="field-label"), widget]
        if hint:
            parts.append(Static(hint, classes="field-hint", markup=False))
        parts.append(Static("", id=f"error-{name}", classes="field-error", markup=False))
        return Vertical(*parts, classes="form-field")

    def fields(self) -> ComposeResult:
        raise NotImplementedError

    def values(self) -> dict[str, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------ submit

    def action_cancel(self) -> None:
        if self.running:
            self.notify("Wait until it ends: the task runs on the server either way.", timeout=4)
            return
        self.dismiss(None)

    @on(Button.Pressed, "#form-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Button.Pressed, "#form-submit")
    def _submit_pressed(self) -> None:
        self.action_submit()

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        if self.running:
            return
        self.clear_errors()
        op = get_operation(self.OPERATION)
        try:
            params = parse_params(op, {"vmid": self.guest.vmid, **self.values()})
        except InvalidInput as exc:
            self.show_errors(exc)
            return
        if not (op.confirm and self.app.service.policy.allow_writes):
            self.send(params, confirmed=not op.confirm)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.send(params, confirmed=True)

        question = f"{self.SUBMIT} on {self.guest.name}?"
        self.app.push_screen(ConfirmScreen(question, op.summary, self.SUBMIT), answered)

    @work(exclusive=True, group="form", exit_on_error=False)
    async def send(self, params: BaseModel, *, confirmed: bool) -> None:
        panel = self.query_one(TaskProgress)
        self.running = True
        self.query_one("#form-submit", Button).disabled = True
        try:
            result = await run_with_progress(
                self.app.service,
                self.OPERATION,
                params,
                confirmed=confirmed,
                panel=panel,
                doing=self.DOING,
            )
        except InvalidInput as exc:
            self.show_errors(exc)
        except LabdeckError as exc:
            panel.finish(failure_text(exc), error=True)
        else:
            self.dismiss(result)
            return
        finally:
            self.running = False
        # it failed: the form stays, to be corrected and sent again
        self.query_one("#form-submit", Button).disabled = False

    def clear_errors(self) -> None:
        for error in self.query(".field-error").results(Static):
            error.update("")
        self.query_one(TaskProgress).display = False

    def show_errors(self, exc: InvalidInput) -> None:
        """Each rejected field's reason under it; the rest (and the message) below."""
        unplaced: list[str] = []
        for name, why in exc.fields.items():
            found = self.query(f"#error-{name}")
            if found:
                found.first(Static).update(why)
            else:
                unplaced.append(f"{name}: {why}")
        if exc.fields and not unplaced:
            text = "Correct the marked field" + ("s." if len(exc.fields) > 1 else ".")
        else:
            text = " ".join([exc.message, *unplaced])
        if exc.hint:
            text += f" {exc.hint}"
        self.query_one(TaskProgress).finish(text, error=True)


# ---------------------------------------------------------------------- snapshot


class SnapshotForm(ActionForm):
    OPERATION = "pve_create_snapshot"
    TITLE = "Take a snapshot"
    DOING = "Taking the snapshot"
    SUBMIT = "Take snapshot"

    @property
    def can_save_ram(self) -> bool:
        return self.guest.kind == "qemu" and self.guest.status == "running"

    def fields(self) -> ComposeResult:
        yield self.field(
            "snapname",
            "Name",
            Input(placeholder="e.g. before-upgrade", id="snapname"),
            "a letter, then letters, digits, - or _ (2-40)",
        )
        yield self.field("description", "Description", Input(id="description"))
        if self.can_save_ram:
            yield self.field(
                "vmstate",
                "RAM",
                Checkbox("Include RAM (a rollback resumes the running VM)", id="vmstate"),
            )

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "snapname": self.query_one("#snapname", Input).value.strip(),
            "description": _text(self.query_one("#description", Input)),
        }
        if self.can_save_ram:
            out["vmstate"] = self.query_one("#vmstate", Checkbox).value
        return out


# ---------------------------------------------------------------------- backup

MODES = (
    ("snapshot: no downtime", "snapshot"),
    ("suspend: brief pause", "suspend"),
    ("stop: stopped during the backup", "stop"),
)
COMPRESSIONS = (("zstd", "zstd"), ("gzip", "gzip"), ("lzo", "lzo"), ("none", "none"))


class BackupForm(ActionForm):
    OPERATION = "pve_backup_guest"
    TITLE = "Back up now"
    DOING = "Backing up"
    SUBMIT = "Back up"

    def fields(self) -> ComposeResult:
        yield self.field(
            "storage",
            "Storage",
            Select[str]([], prompt="loading storages…", id="storage"),
            "storages that hold backups and that this guest's node reaches",
        )
        yield self.field(
            "mode", "Mode", Select[str](MODES, value="snapshot", allow_blank=False, id="mode")
        )
        yield self.field(
            "compress",
            "Compression",
            Select[str](COMPRESSIONS, value="zstd", allow_blank=False, id="compress"),
        )
        yield self.field(
            "notes",
            "Notes",
            Input(value="{{guestname}}", id="notes"),
            "{{guestname}}, {{vmid}} and {{node}} are filled in",
        )

    def on_mount(self) -> None:
        super().on_mount()
        self.load_storages()

    @work(exclusive=True, group="form-options", exit_on_error=False)
    async def load_storages(self) -> None:
        select = self.query_one("#storage", Select)
        try:
            table = await self.app.service.call("pve_list_storage", {"content": "backup"})
        except LabdeckError as exc:
            self.query_one("#error-storage", Static).update(f"Storages unavailable: {exc}")
            return
        assert isinstance(table, Table)
        rows = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
        reachable = [r for r in rows if r["node"] in (None, self.guest.node)]
        shared = {r["storage"] for r in reachable if r["node"] is None}
        # shared storages first: an archive there survives the loss of this node
        names = sorted({str(r["storage"]) for r in reachable}, key=lambda s: (s not in shared, s))
        select.set_options([(name, name) for name in names])
        select.prompt = "choose a storage" if names else "no backup storage on this node"
        if names:
            select.value = names[0]

    def values(self) -> dict[str, Any]:
        return {
            "vmid": [self.guest.vmid],
            "storage": _choice(self.query_one("#storage", Select)),
            "mode": _choice(self.query_one("#mode", Select)),
            "compress": _choice(self.query_one("#compress", Select)),
            "notes": _text(self.query_one("#notes", Input)),
        }


# ---------------------------------------------------------------------- clone


#: the storage option that leaves the choice to Proxmox VE (the source's storage)
SAME_STORAGE = "-"


async def online_nodes(service: Labdeck, *, besides: str) -> list[str]:
    """Names of the online nodes other than ``besides`` (where a guest can go)."""
    inventory = await service.inventory()
    return sorted(n.node for n in inventory.nodes if n.status == "online" and n.node != besides)


def clone_name(name: str) -> str:
    """A default name for the copy: ``<name>-clone``, within PVE's 63 characters."""
    return f"{name[: 63 - len('-clone')]}-clone"


class CloneForm(ActionForm):
    OPERATION = "pve_clone_guest"
    TITLE = "Clone"
    DOING = "Cloning"
    SUBMIT = "Clone"

    def fields(self) -> ComposeResult:
        # No operation tells the next free vmid without taking it: left empty, the clone
        # operation asks Proxmox VE (/cluster/nextid) at the moment it creates the copy.
        yield self.field(
            "newid",
            "New VMID",
            Input(placeholder="empty: the next free vmid", id="newid", restrict=r"[0-9]*"),
        )
        yield self.field("name", "Name", Input(value=clone_name(self.guest.name), id="name"))
        kinds = [("full copy", "full")]
        if self.guest.template:
            kinds.insert(0, ("linked clone (shares the template's disks)", "linked"))
        yield self.field(
            "full", "Copy", Select[str](kinds, value=kinds[0][1], allow_blank=False, id="full")
        )
        yield self.field(
            "target",
            "Target node",
            Select[str]([], prompt="loading nodes…", id="target"),
            "another node needs a full copy onto shared storage",
        )
        yield self.field(
            "storage",
            "Storage",
            Select[str]([], prompt="loading storages…", id="storage"),
            "full copies only; the source's storage when left as it is",
        )

    def on_mount(self) -> None:
        super().on_mount()
        self.load_options()

    @work(exclusive=True, group="form-options", exit_on_error=False)
    async def load_options(self) -> None:
        service = self.app.service
        content = "images" if self.guest.kind == "qemu" else "rootdir"
        try:
            others = await online_nodes(service, besides=self.guest.node)
            table = await service.call("pve_list_storage", {"content": content})
        except LabdeckError as exc:
            self.query_one("#error-target", Static).update(f"Options unavailable: {exc}")
            return
        same = (f"{self.guest.node} (same node)", self.guest.node)
        target = self.query_one("#target", Select)
        target.set_options([same, *((name, name) for name in others)])
        target.value = self.guest.node
        names = sorted({str(row[0]) for row in table.rows}) if isinstance(table, Table) else []
        storage = self.query_one("#storage", Select)
        storage.set_options([("as the source", SAME_STORAGE)] + [(n, n) for n in names])
        storage.value = SAME_STORAGE

    def values(self) -> dict[str, Any]:
        newid = self.query_one("#newid", Input).value.strip()
        target = _choice(self.query_one("#target", Select))
        storage = _choice(self.query_one("#storage", Select))
        return {
            "newid": newid or None,
            "name": _text(self.query_one("#name", Input)),
            "full": _choice(self.query_one("#full", Select)) != "linked",
            "target": None if target == self.guest.node else target,
            "storage": None if storage in (None, SAME_STORAGE) else storage,
        }


# ---------------------------------------------------------------------- migrate


class MigrateForm(ActionForm):
    OPERATION = "pve_migrate_guest"
    TITLE = "Migrate"
    DOING = "Migrating"
    SUBMIT = "Migrate"

    @property
    def running_vm(self) -> bool:
        return self.guest.kind == "qemu" and self.guest.status == "running"

    @property
    def running_container(self) -> bool:
        return self.guest.kind == "lxc" and self.guest.status == "running"

    def fields(self) -> ComposeResult:
        yield self.field(
            "target",
            "Target node",
            Select[str]([], prompt="loading nodes…", id="target"),
            "online nodes other than this one",
        )
        if self.running_vm:
            yield self.field(
                "online",
                "Live",
                Checkbox("Online: move it while it runs (no downtime)", value=True, id="online"),
            )
        if self.running_container:
            yield self.field(
                "restart",
                "Restart",
                Checkbox("Restart on the target (a short outage)", id="restart"),
            )

    def on_mount(self) -> None:
        super().on_mount()
        self.load_nodes()

    @work(exclusive=True, group="form-options", exit_on_error=False)
    async def load_nodes(self) -> None:
        try:
            others = await online_nodes(self.app.service, besides=self.guest.node)
        except LabdeckError as exc:
            self.query_one("#error-target", Static).update(f"Nodes unavailable: {exc}")
            return
        select = self.query_one("#target", Select)
        select.set_options([(name, name) for name in others])
        if others:
            select.value = others[0]
        else:
            select.prompt = "no other node is online"

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": _choice(self.query_one("#target", Select))}
        if self.running_vm:
            out["online"] = self.query_one("#online", Checkbox).value
        if self.running_container:
            out["restart"] = self.query_one("#restart", Checkbox).value
        return out


#: the form of each form action of the detail screen
FORMS: dict[str, Callable[[Guest], ActionForm]] = {
    "snapshot": SnapshotForm,
    "backup": BackupForm,
    "clone": CloneForm,
    "migrate": MigrateForm,
}
