"""One cgroup per zygote: whole-tree CPU time, memory and process limits for its candidate runs.

A zygote runs one candidate at a time, so one cgroup per zygote (reused run after run, empty in
between) gives every run its own exact counters without a mkdir per run. The caller owns the
cgroups: it creates them before the zygote starts and removes them (killing anything left inside)
when the zygote stops; cgroups of processes that died without cleaning up are removed at the next
start. cgroup v1 (``cpuacct`` + ``memory`` + ``pids``) is used where mounted, else cgroup v2.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "codedpo-sandbox-"


@dataclass
class Cgroup:
    """The directories of one zygote's cgroup and what the zygote should open in them."""

    dirs: list[Path]
    spec: dict = field(default_factory=dict)


def _mounts() -> dict[str, Path]:
    """controller → mount point of its cgroup v1 hierarchy; ``"v2"`` → the cgroup2 mount."""
    found: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fstype, _source, options = [*right.split(), "", "", ""][:3]
            mountpoint = Path(left.split()[4])
            if fstype == "cgroup2":
                found.setdefault("v2", mountpoint)
            elif fstype == "cgroup":
                for option in options.split(","):
                    found.setdefault(option, mountpoint)
    return found


def _own_paths() -> dict[str, str]:
    """controller → this process's cgroup path in that hierarchy (``"v2"`` for the unified one)."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else ["v2"]:
                paths[controller] = path
    return paths


def _base(mounts: dict[str, Path], own: dict[str, str], controller: str) -> Path | None:
    if controller not in mounts or controller not in own:
        return None
    base = mounts[controller] / own[controller].lstrip("/")
    return base if base.is_dir() else mounts[controller]


def create(index: int) -> tuple[Cgroup | None, str]:
    """This process's cgroup for zygote ``index``, or None and the reason none could be made."""
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError as exc:
        return None, f"cannot read the cgroup layout: {exc}"
    name = f"{PREFIX}{os.getpid()}-{index}"
    v1 = {c: _base(mounts, own, c) for c in ("cpuacct", "memory", "pids")}
    try:
        if v1["cpuacct"] is not None:
            return _create_v1(name, v1), ""
        if (base := _base(mounts, own, "v2")) is not None:
            return _create_v2(base / name), ""
    except OSError as exc:
        return None, f"cannot create a cgroup: {exc.strerror or exc}"
    return None, "no cgroup hierarchy with CPU accounting is mounted"


def _create_v1(name: str, bases: dict[str, Path | None]) -> Cgroup:
    dirs = {c: base / name for c, base in bases.items() if base is not None}
    for d in dirs.values():
        _fresh_dir(d)
    spec = {
        "kind": "v1",
        "procs": [str(d / "cgroup.procs") for d in dirs.values()],
        "cpu": str(dirs["cpuacct"] / "cpuacct.usage"),
    }
    if "memory" in dirs:
        spec |= {
            "memory_limit": str(dirs["memory"] / "memory.limit_in_bytes"),
            "memory_events": str(dirs["memory"] / "memory.oom_control"),
        }
    if "pids" in dirs:
        spec["pids_max"] = str(dirs["pids"] / "pids.max")
    return Cgroup(list(dirs.values()), spec)


def _create_v2(d: Path) -> Cgroup:
    _fresh_dir(d)
    spec = {"kind": "v2", "procs": [str(d / "cgroup.procs")], "cpu": str(d / "cpu.stat")}
    for key, filename in (("memory_limit", "memory.max"), ("memory_events", "memory.events"), ("pids_max", "pids.max")):
        if (d / filename).exists():  # only where the parent delegates the controller
            spec[key] = str(d / filename)
    return Cgroup([d], spec)


def _fresh_dir(d: Path) -> None:
    if d.exists():  # left by an earlier zygote of this process (restarted after a failure)
        _empty(d)
    else:
        d.mkdir()


def _empty(d: Path) -> None:
    """Kill every process still in ``d``."""
    for _ in range(100):
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def remove(cgroup: Cgroup) -> None:
    """Kill what is left inside and remove the directories (a dying process may hold them briefly)."""
    for d in cgroup.dirs:
        _empty(d)
        for _ in range(100):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


def leftovers() -> list[Path]:
    """cgroups of this project whose owning process no longer exists."""
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError:
        return []
    stale = []
    for controller in ("cpuacct", "memory", "pids", "v2"):
        base = _base(mounts, own, controller)
        if base is None:
            continue
        for d in base.glob(PREFIX + "*"):
            owner = d.name[len(PREFIX) :].split("-")[0]
            if owner.isdigit() and not Path("/proc", owner).exists():
                stale.append(d)
    return stale


def remove_leftovers() -> None:
    remove(Cgroup(leftovers()))
