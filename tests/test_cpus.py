"""``service.cpus``: the CPU set, cgroup v1 and v2 quotas (fake trees, and a real cgroup where the
tests run as root), physical cores, and the ONNX Runtime pool the service asks for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.cpu_quota import QuotaUnavailableError, quota_cgroup
from service.cpus import cgroup_mounts, cpu_limit, intra_op_threads, parse_cpu_max, physical_cores

REPO_ROOT = Path(__file__).resolve().parents[1]


def mount_line(root: str, point: Path, kind: str, options: str) -> str:
    return f"30 25 0:26 {root} {point} rw,nosuid,nodev shared:9 - {kind} {kind} {options}"


def child_json(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter (a CPU set or cgroup of its own); its last output line, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("max 100000", None),
        ("200000 100000", 2.0),
        ("150000 100000", 1.5),
        ("50000 100000", 0.5),
        ("0 100000", None),
        ("junk", None),
        ("", None),
    ],
)
def test_cpu_max(text, cpus):
    assert parse_cpu_max(text) == cpus


def test_v2_quota_of_an_ancestor_applies(tmp_path):
    """Kubernetes puts the limit on the pod's cgroup; the container's own cgroup below it says "max"."""
    write(tmp_path / "kubepods" / "cpu.max", "max 100000")
    write(tmp_path / "kubepods" / "pod1" / "cpu.max", "400000 100000")
    write(tmp_path / "kubepods" / "pod1" / "ctr" / "cpu.max", "max 100000")
    mountinfo = mount_line("/", tmp_path, "cgroup2", "rw")
    assert cpu_limit(mountinfo, "0::/kubepods/pod1/ctr\n") == 4.0
    assert cpu_limit(mountinfo, "0::/kubepods\n") is None


def test_v2_smallest_quota_on_the_path_wins(tmp_path):
    write(tmp_path / "a" / "cpu.max", "150000 100000")
    write(tmp_path / "a" / "b" / "cpu.max", "300000 100000")
    assert cpu_limit(mount_line("/", tmp_path, "cgroup2", "rw"), "0::/a/b") == 1.5


def test_v1_quota_in_a_container_that_sees_its_own_cgroup_as_the_root(tmp_path):
    """Docker without a cgroup namespace: /proc/self/cgroup names the host path, mounted at the container's root."""
    point = tmp_path / "cpu,cpuacct"
    write(point / "cpu.cfs_quota_us", "250000\n")
    write(point / "cpu.cfs_period_us", "100000\n")
    mountinfo = "\n".join(
        [
            mount_line("/docker/abc", point, "cgroup", "rw,cpu,cpuacct"),
            mount_line("/docker/abc", tmp_path / "memory", "cgroup", "rw,memory"),
            mount_line("/", tmp_path / "unified", "cgroup2", "rw"),
        ]
    )
    assert cpu_limit(mountinfo, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n") == 2.5


def test_v1_unlimited_and_unreadable_mean_no_limit(tmp_path):
    write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    mountinfo = mount_line("/", tmp_path / "cpu", "cgroup", "rw,cpu")
    assert cpu_limit(mountinfo, "1:cpu:/\n") is None
    assert cpu_limit(mountinfo, "1:cpu:/not/there\n") is None  # the files are missing: no limit known
    assert cpu_limit(mountinfo, "1:memory:/\n") is None  # no hierarchy with the cpu controller
    assert cpu_limit("", "") is None


def test_a_cgroup_outside_the_mounted_part_reads_the_mount_point(tmp_path):
    write(tmp_path / "cpu.max", "100000 100000")
    assert cpu_limit(mount_line("/mine", tmp_path, "cgroup2", "rw"), "0::/elsewhere\n") == 1.0


def test_mount_points_with_escaped_spaces(tmp_path):
    point = tmp_path / "with space"
    write(point / "cpu.max", "300000 100000")
    escaped = str(point).replace(" ", "\\040")
    [mount] = cgroup_mounts(mount_line("/", Path(escaped), "cgroup2", "rw"))
    assert mount.point == point and mount.may_have_cpu
    assert cpu_limit(mount_line("/", Path(escaped), "cgroup2", "rw"), "0::/") == 3.0


def test_physical_cores_count_smt_siblings_once(tmp_path):
    for cpu, core in ((0, 0), (1, 1), (2, 0), (3, 1)):  # two cores, two hardware threads each
        write(tmp_path / f"cpu{cpu}" / "topology" / "core_id", f"{core}\n")
        write(tmp_path / f"cpu{cpu}" / "topology" / "physical_package_id", "0\n")
    assert physical_cores(range(4), tmp_path) == 2
    assert physical_cores([0, 2], tmp_path) == 1
    assert physical_cores([0, 1, 7], tmp_path) == 3  # cpu7's topology is unreadable: it counts alone


def test_an_explicit_thread_count_is_kept():
    assert intra_op_threads(3) == 3


PINNED_CHILD = textwrap.dedent(
    """
    import json, os, sys
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    from service.inference.engine import Engine
    engine = Engine.load(sys.argv[1])
    allowed = set()
    for task in os.listdir("/proc/self/task"):
        allowed |= os.sched_getaffinity(int(task))
    print(json.dumps({"cpu": cpu, "threads": engine.intra_op_threads, "allowed": sorted(allowed)}))
    """
)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_engine_on_one_pinned_cpu_starts_one_thread_and_stays_on_it(constant_model_path):
    """ONNX Runtime's own default would start one pinned worker per physical core of the machine, outside
    the process's CPU set (on a one-CPU machine both are the same and this cannot tell them apart)."""
    seen = child_json(PINNED_CHILD, str(constant_model_path))
    assert seen["threads"] == 1
    assert seen["allowed"] == [seen["cpu"]]


QUOTA_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    Path(sys.argv[1]).write_text(str(os.getpid()))
    from service.cpus import cpu_limit, intra_op_threads, usable_cores
    print(json.dumps({"limit": cpu_limit(), "threads": intra_op_threads(0), "cores": usable_cores()}))
    """
)


def test_a_real_cgroup_quota_is_seen():
    """Runs where the suite may make cgroups (root, a writable cpu controller); elsewhere it cannot."""
    try:
        with quota_cgroup(1.0) as procs:
            seen = child_json(QUOTA_CHILD, str(procs))
    except QuotaUnavailableError as exc:
        pytest.skip(f"cannot make a cgroup with a CPU quota here: {exc}")
    threads = 1 if (os.cpu_count() or 1) > 1 else 0  # a one-CPU machine under a one-CPU quota is unlimited
    assert seen == {"limit": 1.0, "threads": threads, "cores": 1}


def test_no_writable_cgroup_is_a_clear_error(tmp_path, monkeypatch):
    """Where no cgroup can be made (here: the only cpu hierarchy is not there), the bench part says why."""
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(mount_line("/", tmp_path / "gone", "cgroup", "rw,cpu") + "\n")
    monkeypatch.setattr("bench.cpu_quota.MOUNTINFO", mountinfo)
    with pytest.raises(QuotaUnavailableError, match="gone"), quota_cgroup(1.0):
        pass
