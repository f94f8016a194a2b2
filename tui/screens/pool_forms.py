"""Pool editing from the Pools view: the forms, and the flows that end in a catalogue call.

Every form checks its values with the operation's own params model (``parse_params``)
before it closes, so a bad pool id is named under its field and nothing is sent. The
calls then go through ``app.request_write``, like the guest actions: the policy, the
confirmation of disruptive operations, the activity line, notifications and the refresh
are the same. In read-only mode a form is not even offered: the policy's refusal is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from core.errors import InvalidInput, PolicyDenied
from core.models import Guest, PoolInfo
from core.ops import get_operation
from core.service import parse_params
from tui.data import WriteRequest
from tui.formatting import guest_label
from tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from tui.app import LabdeckApp

Params = dict[str, Any]


def checked(operation: str, params: Params) -> dict[str, str]:
    """The op's own validation, field by field ({} when the params are fine)."""
    try:
        parse_params(get_operation(operation), params)
    except InvalidInput as exc:
        return exc.fields or {"params": str(exc)}
    return {}


class _Form(ModalScreen[Params | None]):
    """Shared frame: a title, fields, a line for errors, Cancel and a submit button."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="poolform.cancel",
                tooltip="Close the form, change nothing."),
    ]  # fmt: skip

    submit_label = "OK"

    def action_cancel(self) -> None:
        self.dismiss(None)

    def buttons(self) -> ComposeResult:
        with Horizontal(classes="pool-form-buttons"):
            yield Button("Cancel", id="cancel", variant="default")
            yield Button(self.submit_label, id="submit", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        raise NotImplementedError

    def show_errors(self, errors: dict[str, str], fields: tuple[str, ...]) -> None:
        """Each field's error under it; anything else on the form's error line."""
        for name in fields:
            line = self.query_one(f"#error-{name}", Static)
            line.update(errors.get(name, ""))
            line.display = name in errors
        rest = [f"{k}: {v}" for k, v in errors.items() if k not in fields]
        general = self.query_one("#error-form", Static)
        general.update("\n".join(rest))
        general.display = bool(rest)


class PoolForm(_Form):
    """Create a pool (``poolid`` given: edit that pool's comment); dismisses with the params."""

    def __init__(self, pool: PoolInfo | None = None) -> None:
        super().__init__()
        self.pool = pool
        self.operation = "pve_create_pool" if pool is None else "pve_update_pool"
        self.submit_label = "Create" if pool is None else "Save"

    def compose(self) -> ComposeResult:
        pool = self.pool
        title = "New resource pool" if pool is None else f"Comment of pool {pool.poolid}"
        with Vertical(id="pool-form", classes="pool-dialog"):
            yield Static(title, classes="pool-form-title", markup=False)
            yield Label("Pool id (letters, digits, - and _)")
            yield Input(value="" if pool is None else pool.poolid, id="poolid",
                        placeholder="e.g. staging", disabled=pool is not None,
                        max_length=64)  # fmt: skip
            yield Static("", id="error-poolid", classes="pool-form-error", markup=False)
            yield Label("Comment")
            yield Input(value="" if pool is None else pool.comment, id="comment",
                        placeholder="what the pool is for")  # fmt: skip
            yield Static("", id="error-comment", classes="pool-form-error", markup=False)
            yield Static("", id="error-form", classes="pool-form-error", markup=False)
            yield from self.buttons()

    def on_mount(self) -> None:
        self.show_errors({}, ("poolid", "comment"))
        self.query_one("#poolid" if self.pool is None else "#comment", Input).focus()

    def params(self) -> Params:
        poolid = self.query_one("#poolid", Input).value.strip()
        comment = self.query_one("#comment", Input).value.strip()
        if self.pool is None:
            return {"poolid": poolid, "comment": comment or None}
        return {"poolid": poolid, "comment": comment}

    def submit(self) -> None:
        params = self.params()
        errors = checked(self.operation, params)
        self.show_errors(errors, ("poolid", "comment"))
        if not errors:
            self.dismiss(params)


def guest_choice(guest: Guest) -> str:
    where = f"{guest.kind} on {guest.node}, {guest.status}"
    if guest.pool:
        where += f", in pool {guest.pool}"
    return f"{guest.vmid:>5}  {guest.name}  ({where})"


class MemberPicker(_Form):
    """Pick guests to add to ``pool`` (space ticks one); dismisses with the params."""

    submit_label = "Add"

    def __init__(self, pool: PoolInfo, candidates: list[Guest]) -> None:
        super().__init__()
        self.pool = pool
        self.candidates = candidates

    def compose(self) -> ComposeResult:
        with Vertical(id="pool-members", classes="pool-dialog"):
            yield Static(f"Add guests to pool {self.pool.poolid}", classes="pool-form-title",
                         markup=False)  # fmt: skip
            yield Label("space: tick a guest · enter on Add: add the ticked ones")
            yield SelectionList[int](
                *[Selection(guest_choice(g), g.vmid) for g in self.candidates], id="guests"
            )
            yield Static("", id="error-vms", classes="pool-form-error", markup=False)
            yield Checkbox("Move guests that are in another pool", id="allow-move")
            yield Static("", id="error-form", classes="pool-form-error", markup=False)
            yield from self.buttons()

    def on_mount(self) -> None:
        self.show_errors({}, ("vms",))
        self.query_one(SelectionList).focus()

    def submit(self) -> None:
        chosen: list[int] = list(self.query_one(SelectionList).selected)
        if not chosen:
            self.show_errors({"vms": "Tick at least one guest (space), then Add."}, ("vms",))
            return
        params: Params = {"poolid": self.pool.poolid, "vms": chosen,
                          "allow_move": self.query_one(Checkbox).value}  # fmt: skip
        errors = checked("pve_update_pool", params)
        self.show_errors(errors, ("vms",))
        if not errors:
            self.dismiss(params)


class PoolEditor:
    """What the Pools view's keys do: ask, then hand the call to ``app.request_write``."""

    def __init__(self, app: LabdeckApp) -> None:
        self.app = app

    def _refused(self, operation: str) -> bool:
        """Read-only (or an allow-list without it): say the policy's refusal, offer no form."""
        service = self.app.service
        try:
            service.policy.check_operation(
                get_operation(operation), confirmed=True, how_to_allow=service.how_to_allow
            )
        except PolicyDenied as exc:
            self.app.notify(str(exc), title=f"{operation}: refused", severity="warning",
                            timeout=8)  # fmt: skip
            return True
        return False

    def _write(self, operation: str, params: Params, *, verb: str, doing: str, label: str,
               question: str = "", detail: str = "") -> None:  # fmt: skip
        self.app.request_write(WriteRequest(
            operation=operation, params=params, verb=verb, doing=doing, label=label,
            question=question or f"{verb} {label}?", detail=detail,
            key=(operation, str(params["poolid"])),
        ))  # fmt: skip

    def create(self) -> None:
        if self._refused("pve_create_pool"):
            return

        def done(params: Params | None) -> None:
            if params is not None:
                self._write("pve_create_pool", params, verb="Create pool", doing="creating pool",
                            label=str(params["poolid"]))  # fmt: skip

        self.app.push_screen(PoolForm(), callback=done)

    def edit_comment(self, pool: PoolInfo) -> None:
        if self._refused("pve_update_pool"):
            return

        def done(params: Params | None) -> None:
            if params is not None:
                self._write("pve_update_pool", params, verb="Set comment of pool",
                            doing="changing pool", label=pool.poolid)  # fmt: skip

        self.app.push_screen(PoolForm(pool), callback=done)

    def add_members(self, pool: PoolInfo) -> None:
        if self._refused("pve_update_pool"):
            return
        candidates = sorted((g for g in self.app.guests() if g.pool != pool.poolid),
                            key=lambda g: g.vmid)  # fmt: skip
        if not candidates:
            self.app.notify(f"Every guest is in pool {pool.poolid} already.", timeout=4)
            return

        def done(params: Params | None) -> None:
            if params is not None:
                self._write("pve_update_pool", params, verb="Add to pool",
                            doing="adding guests to pool", label=pool.poolid)  # fmt: skip

        self.app.push_screen(MemberPicker(pool, candidates), callback=done)

    def remove_member(self, pool: PoolInfo, guest: Guest) -> None:
        """Asks first (with writes allowed); read-only, the call itself is refused."""
        params: Params = {"poolid": pool.poolid, "vms": [guest.vmid], "delete": True}

        def run() -> None:
            self._write("pve_update_pool", params, verb="Remove from pool",
                        doing="removing from pool", label=pool.poolid)  # fmt: skip

        if not self.app.service.policy.allow_writes:
            run()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                run()
            else:
                self.app.notify(f"Remove {guest_label(guest)}: cancelled.", timeout=3)

        question = f"Remove {guest.name} from pool {pool.poolid}?"
        detail = f"{guest_label(guest)} stays as it is; only its pool membership ends."
        self.app.push_screen(ConfirmScreen(question, detail, "Remove"), callback=answered)

    def delete(self, pool: PoolInfo) -> None:
        """``pve_delete_pool`` needs a confirmation: ``request_write`` asks for it."""
        members = len(pool.members)
        detail = f"{members} member(s): Proxmox VE refuses to delete a pool that is not empty."
        self._write("pve_delete_pool", {"poolid": pool.poolid}, verb="Delete pool",
                    doing="deleting pool", label=pool.poolid,
                    detail=detail if members else "The pool is empty.")  # fmt: skip
