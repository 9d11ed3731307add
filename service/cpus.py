"""How much CPU this process may use: its affinity mask, a container's CPU quota, physical cores.

Containers limit CPU in two ways a core count does not show: a CPU set (the affinity mask) and a CFS
quota (``docker run --cpus``, a Kubernetes CPU limit), which lets the process's threads use N CPUs'
worth of time per period and then stops them until the period ends. ONNX Runtime's default intra-op
pool sees neither: it has one thread per physical core of the *host*, pinned to those cores
(microsoft/onnxruntime#29510), so on a node with 64 physical cores under a 4-CPU limit it runs 64
threads that spend most of each period throttled. :func:`intra_op_threads` sizes the pool from what the process
may really use; ``bench/cpu_quota.py`` measures the difference.

The quota is read the way the kernel applies it: from the process's own cgroup (``/proc/self/cgroup``,
mapped through ``/proc/self/mountinfo`` to where the hierarchy is mounted) and every ancestor up to
the mount's root, cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``).
"""

from __future__ import annotations

import functools
import math
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MOUNTINFO = Path("/proc/self/mountinfo")
PROC_CGROUP = Path("/proc/self/cgroup")
SYSFS_CPUS = Path("/sys/devices/system/cpu")


def affinity() -> frozenset[int]:
    """The CPUs this process may run on (all of them where the OS has no affinity call)."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def cpu_limit(mountinfo: str | None = None, cgroups: str | None = None) -> float | None:
    """The CPU quota on this process's cgroups, in CPUs (``1.5``: 150 ms per 100 ms); None if unlimited.

    ``mountinfo`` and ``cgroups`` default to this process's ``/proc/self/mountinfo`` and
    ``/proc/self/cgroup``; anything unreadable counts as no limit.
    """
    try:
        mountinfo = MOUNTINFO.read_text() if mountinfo is None else mountinfo
        cgroups = PROC_CGROUP.read_text() if cgroups is None else cgroups
    except OSError:
        return None
    limits = [_quota(directory, version) for directory, version in _cpu_cgroup_dirs(mountinfo, cgroups)]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def usable_cores() -> int:
    """CPUs' worth of work this process can do at once: its affinity, capped by a CPU quota (rounded up)."""
    return _capped(len(affinity()), cpu_limit())


def _capped(cores: int, limit: float | None) -> int:
    """``cores``, at most the quota ``limit`` rounded up, at least 1."""
    return max(1, min(cores, math.ceil(limit)) if limit is not None else cores)


def physical_cores(cpus: Iterable[int], sysfs: Path = SYSFS_CPUS) -> int:
    """Distinct physical cores among ``cpus`` (SMT siblings count once); each CPU counts alone if unreadable."""
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            package, core = "cpu", str(cpu)  # unknown topology: the CPU counts as a core of its own
        cores.add((package, core))
    return max(1, len(cores))


def intra_op_threads(configured: int = 0) -> int:
    """The ONNX Runtime intra-op pool size a ``POSE_INTRA_OP_THREADS`` value means.

    A value other than 0 is used as given. 0 keeps ONNX Runtime's own default (one thread per physical
    core, pinned) when this process may use the whole machine; under a CPU set or a CPU quota it is one
    thread per physical core in the set, at most the quota.
    """
    if configured:
        return configured
    cpus = affinity()
    limit = cpu_limit()
    everything = len(cpus) >= (os.cpu_count() or len(cpus))
    if everything and (limit is None or limit >= len(cpus)):
        return 0
    return _capped(physical_cores(cpus), limit)


# ---------------------------------------------------------------------- cgroup files
def _cpu_cgroup_dirs(mountinfo: str, cgroups: str) -> list[tuple[Path, int]]:
    """Every directory whose CPU quota applies to the process, with its cgroup version: the process's
    cgroup in each hierarchy that has the ``cpu`` controller, and its ancestors up to the mount."""
    mounts = [mount for mount in cgroup_mounts(mountinfo) if mount.may_have_cpu]
    found = []
    for line in cgroups.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path.startswith("/"):
            continue
        if hierarchy == "0" and not controllers:
            version = 2
        elif "cpu" in controllers.split(","):
            version = 1
        else:
            continue
        for mount in mounts:
            if mount.version == version:
                found += [(directory, version) for directory in _ancestors(mount.root, mount.point, path)]
    return found


@dataclass(frozen=True)
class CgroupMount:
    """One mounted cgroup hierarchy (a line of ``/proc/self/mountinfo``)."""

    root: str  # the directory of the hierarchy that is mounted here
    point: Path
    version: int  # 1 or 2
    options: frozenset[str]  # v1: the controllers, among the mount options

    @property
    def may_have_cpu(self) -> bool:
        """v2 (the controllers are listed in the tree), or v1 with the ``cpu`` controller."""
        return self.version == 2 or "cpu" in self.options


def cgroup_mounts(mountinfo: str) -> list[CgroupMount]:
    """The cgroup mounts in a ``/proc/self/mountinfo`` text."""
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4 or dash < 5 or fields[dash + 1] not in ("cgroup", "cgroup2"):
            continue
        version = 2 if fields[dash + 1] == "cgroup2" else 1
        options = frozenset(fields[dash + 3].split(","))
        mounts.append(CgroupMount(_unescape(fields[3]), Path(_unescape(fields[4])), version, options))
    return mounts


def _ancestors(mount_root: str, mount_point: Path, path: str) -> list[Path]:
    """The process's cgroup directory under ``mount_point`` and its parents up to the mount point.

    A path outside the mounted part of the hierarchy (a container that sees only its own cgroup, mounted
    at its root) leaves only the mount point itself.
    """
    cgroup, root = PurePosixPath(path), PurePosixPath(mount_root)
    try:
        relative = cgroup.relative_to(root)
    except ValueError:
        return [mount_point]
    parts = [part for part in relative.parts if part not in ("", ".")]
    return [mount_point.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _quota(directory: Path, version: int) -> float | None:
    try:
        if version == 2:
            return parse_cpu_max((directory / "cpu.max").read_text())
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cpu_max(text: str) -> float | None:
    """A cgroup v2 ``cpu.max`` ("200000 100000" -> 2.0); None for "max" or anything malformed."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


@functools.cache
def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name (``/proc/cpuinfo``'s first ``model name``; else what :mod:`platform` says)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
