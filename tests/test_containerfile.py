"""The Containerfile follows the rules we can check without a container engine here
(none runs on this machine): pinned bases, a non-root numeric user in the final stage,
exec-form entry point, no remote ADD, no pip cache, the lock file as constraints."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Containerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_base_images_are_pinned_to_a_release_not_latest() -> None:
    for keyword, rest in instructions():
        if keyword == "FROM":
            image = rest.split()[0]
            assert ":" in image and not image.endswith(":latest"), image


def test_final_stage_runs_as_an_unprivileged_numeric_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the final stage must switch away from root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    last_keyword = [k for k, _ in final_stage() if k in ("USER", "RUN")][-1]
    assert last_keyword == "USER", "nothing may run as root after USER"


def test_entrypoint_is_exec_form_and_runs_the_mcp_server() -> None:
    (entry,) = [rest for keyword, rest in final_stage() if keyword == "ENTRYPOINT"]
    assert entry.startswith("[") and '"mcp"' in entry


def test_no_remote_add_no_pip_cache_and_the_lock_is_used() -> None:
    steps = instructions()
    assert not [rest for k, rest in steps if k == "ADD"], "use COPY; never ADD a URL"
    for keyword, rest in steps:
        if keyword == "RUN" and "pip install" in rest:
            assert all(
                "--no-cache-dir" in part for part in rest.split("&&") if "pip install" in part
            )
    assert any("-c /tmp/requirements.lock" in rest for k, rest in final_stage() if k == "RUN")
    assert not [rest for k, rest in steps if k == "RUN" and re.search(r"\bsudo\b|chmod 777", rest)]


def test_the_build_stage_copies_every_package_of_the_wheel() -> None:
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    copied = {rest.split()[0] for keyword, rest in instructions() if keyword == "COPY"}
    assert set(packages) <= copied
