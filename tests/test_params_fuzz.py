"""Every operation's parameters, fuzzed: bad input is refused with a field-named error and
nothing is sent; good input of the right shape is accepted. Parameters come from each
operation's own model, so a new operation is covered without a new test."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.ops import catalogue
from core.service import parse_params

OPS = sorted(catalogue().values(), key=lambda op: op.name)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["; rm -rf /", "$(reboot)", "../../etc/passwd", "100\n101", "\x00", "🔥"]),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_params_are_accepted_or_refused_with_a_named_field(op, data) -> None:
    names = [*op.params.model_fields, "unexpected_param"]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    raw: dict[str, Any] = {name: data.draw(junk) for name in chosen}
    try:
        parsed = parse_params(op, raw)
    except InvalidInput as error:
        assert error.fields, "a refusal must name the offending parameter(s)"
        assert set(error.fields) <= set(names) | {"params"}
        assert error.message.startswith(f"invalid parameters for {op.name}")
    else:
        assert "unexpected_param" not in raw
        # whatever was accepted is of the declared, validated shape
        assert op.params.model_validate(parsed.model_dump()) == parsed
        vmid = getattr(parsed, "vmid", None)
        assert vmid is None or 100 <= vmid <= 999_999_999
        node = getattr(parsed, "node", None)
        assert node is None or (node.replace("-", "").isalnum() and node.isascii())


@pytest.mark.parametrize(
    "name", ["pve1; reboot", "$(id)", "../etc", "pve1/../../x", "-pve1", "pve1\n", "a" * 64]
)
def test_injection_shaped_node_names_never_reach_a_url(name: str) -> None:
    op = catalogue()["pve_guest_status"]
    with pytest.raises(InvalidInput) as info:
        parse_params(op, {"vmid": 100, "node": name})
    assert "node" in info.value.fields
