"""TrueNAS apps and VMs/containers: jobs are waited for with progress, each release's
method names are used (virt.instance on 25.x, container on 26), no-ops change nothing."""

from __future__ import annotations

import pytest

from core.truenas_models import JobFailed
from tests.test_truenas_ops import cells, nas


async def test_app_start_and_stop_wait_for_the_job_with_progress(
    fresh_sim, make_service, audit_log
):
    apps = nas(fresh_sim).state.items["app"]
    seen: list[tuple[float, str]] = []

    async def progress(elapsed: float, message: str) -> None:
        seen.append((elapsed, message))

    async with make_service(fresh_sim, allow_writes=True) as lab:
        started = await lab.call("truenas_start_app", {"name": "jellyfin"}, progress=progress)
        assert started.changed and started.status_after == "RUNNING"
        assert apps["jellyfin"]["state"] == "RUNNING"
        assert seen and all(m.startswith("start jellyfin") for _, m in seen)
        assert [e for e, _ in seen] == sorted(e for e, _ in seen)  # elapsed only grows

        again = await lab.call("truenas_start_app", {"name": "jellyfin"})
        assert not again.changed

        seen.clear()
        stopped = await lab.call(
            "truenas_stop_app", {"name": "plex"}, confirmed=True, progress=progress
        )
        assert stopped.status_after == "STOPPED" and apps["plex"]["state"] == "STOPPED"
        assert seen

        with pytest.raises(JobFailed, match="app_lifecycle"):
            await lab.call("truenas_start_app", {"name": "broken-app"})
        jobs = await lab.call("truenas_list_jobs", {"method": "app."})
        failed = await lab.call("truenas_list_jobs", {"state": "FAILED"})
    assert cells(jobs, "method") == ["app.start", "app.stop", "app.start"]
    assert cells(jobs, "state") == ["FAILED", "SUCCESS", "SUCCESS"]
    assert failed.total == 1 and "broken-app" in failed.rows[0][-1]
    outcomes = [(e["operation"], e["outcome"]) for e in audit_log.read()]
    assert ("truenas_start_app", "error") in outcomes
    assert ("truenas_stop_app", "ok") in outcomes


async def test_unknown_app_is_not_found_before_any_job(fresh_sim, make_service):
    from core.errors import NotFound

    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(NotFound, match="truenas_list_apps"):
            await lab.call("truenas_start_app", {"name": "nope"})
    assert "app.start" not in nas(fresh_sim).method_log


@pytest.mark.parametrize(
    ("release", "family"),
    [("25.04", "virt.instance"), ("25.10", "virt.instance"), ("26", "container")],
)
async def test_vms_and_containers_start_and_stop_on_each_release(
    release, family, make_sim, make_service
):
    handle = make_sim(truenas_version=release)
    seen: list[str] = []
    async with make_service(handle, allow_writes=True) as lab:
        listed = await lab.call("truenas_list_vms")
        assert sorted(zip(cells(listed, "kind"), cells(listed, "name"), strict=True)) == [
            ("container", "dev01"),
            ("container", "web01"),
            ("vm", "debian"),
            ("vm", "win11"),
        ]
        started = await lab.call("truenas_start_vm", {"name": "win11"})
        assert started.status_after == "RUNNING"
        stopped = await lab.call(
            "truenas_stop_vm",
            {"name": "debian"},
            confirmed=True,
            progress=lambda e, m: seen.append(m),
        )
        assert stopped.status_after == "STOPPED" and seen
        up = await lab.call("truenas_start_vm", {"name": "dev01", "kind": "container"})
        assert up.changed and up.status_after == "RUNNING"
        down = await lab.call("truenas_stop_vm", {"name": "web01", "force": True}, confirmed=True)
        assert down.status_after == "STOPPED"
        noop = await lab.call("truenas_stop_vm", {"name": "web01"}, confirmed=True)
        assert not noop.changed
        after = await lab.call("truenas_list_vms", {"status": "RUNNING"})
    assert sorted(cells(after, "name")) == ["dev01", "win11"]
    log = nas(handle).method_log
    assert f"{family}.start" in log and f"{family}.stop" in log
    assert "vm.start" in log and "vm.stop" in log
    assert log.count(f"{family}.stop") == 1  # the no-op sent nothing


async def test_unknown_vm_is_not_found(fresh_sim, make_service):
    from core.errors import NotFound

    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(NotFound, match="truenas_list_vms"):
            await lab.call("truenas_start_vm", {"name": "ghost"})
        with pytest.raises(NotFound):
            await lab.call("truenas_start_vm", {"name": "debian", "kind": "container"})
