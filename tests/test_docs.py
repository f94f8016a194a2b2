"""The generated references in docs/ match the code: edit the catalogue or the settings
models, then regenerate with the commands named at the top of each file."""

from __future__ import annotations

from pathlib import Path

from labdeck.cli import configuration_markdown, operations_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_operations_reference_is_current() -> None:
    assert (DOCS / "operations.md").read_text() == operations_markdown(), (
        "docs/operations.md is stale: run `labdeck ops --markdown > docs/operations.md`"
    )


def test_configuration_reference_is_current() -> None:
    assert (DOCS / "configuration.md").read_text() == configuration_markdown(), (
        "docs/configuration.md is stale: run `labdeck config reference > docs/configuration.md`"
    )


def test_every_operation_and_setting_is_documented() -> None:
    from core.config import PolicySettings, PveSettings, TrueNasSettings
    from core.ops import catalogue

    operations = (DOCS / "operations.md").read_text()
    for name, op in catalogue().items():
        assert f"### `{name}`" in operations
        for field_name, field in op.params.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"
    for model in (PveSettings, TrueNasSettings, PolicySettings):
        for field_name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{field_name} has no description"
