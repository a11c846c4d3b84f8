"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs on these machines)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SERVICES = {"etcd", "minio", "milvus", "redis", "postgres", "migrations", "api", "worker-cpu", "worker-gpu", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_healthchecks_and_volumes(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        if name != "migrations":
            assert "test" in svc.get("healthcheck", {}), f"{name} has no healthcheck"
            assert svc.get("restart") == "unless-stopped", name
    assert services["migrations"]["command"] == ["dupesift", "db", "upgrade"]
    for name in ("api", "worker-cpu", "worker-gpu", "beat"):
        deps = services[name]["depends_on"]
        assert deps["migrations"]["condition"] == "service_completed_successfully"
        assert deps["milvus"]["condition"] == deps["redis"]["condition"] == "service_healthy"
        assert "dupesift-data:/data" in services[name]["volumes"]
        env = services[name]["environment"]
        assert env["DUPESIFT_MILVUS_URI"] == "http://milvus:19530" and env["DUPESIFT_BROKER_URL"].startswith("redis://")
        assert env["DUPESIFT_DATABASE_URL"].startswith("postgresql://")
    assert services["milvus"]["depends_on"] == {"etcd": {"condition": "service_healthy"},
                                                "minio": {"condition": "service_healthy"}}
    named = set(compose["volumes"])
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            assert src.startswith(("$", ".", "/")) or src in named, f"{name}: undeclared volume {src}"
    for name in ("etcd", "minio", "milvus", "redis", "postgres"):
        assert services[name].get("volumes"), f"{name} keeps its data in the container"


def test_images_are_pinned(compose: dict) -> None:
    for name, svc in compose["services"].items():
        image = svc["image"]
        if image.startswith("dupesift:"):
            continue
        tag = image.rsplit(":", 1)[-1]
        assert ":" in image and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"
    assert compose["services"]["milvus"]["image"].startswith("milvusdb/milvus:v2.5")


def test_workers_queues_and_gpu_reservation(compose: dict) -> None:
    gpu = compose["services"]["worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    assert gpu["build"]["target"] == "gpu" and "--queues" in gpu["command"]
    assert gpu["command"][gpu["command"].index("--queues") + 1] == "gpu"
    cpu = compose["services"]["worker-cpu"]
    assert cpu["build"]["target"] == "cpu" and "deploy" not in cpu
    assert set(cpu["command"][cpu["command"].index("--queues") + 1].split(",")) == {"cpu", "default", "gpu"}
    assert compose["services"]["beat"]["command"] == ["dupesift", "beat"]


def test_dockerfile_targets() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, re.MULTILINE)
    assert [s for _, s in stages] == ["wheels", "cpu", "gpu"]
    assert all(":" in img and not img.endswith(":latest") for img, _ in stages)
    assert '".[workers]"' in text and "onnxruntime-gpu" in text and "faiss-gpu" in text
    assert "torch" not in text  # serving and workers never pull torch


def test_docker_compose_config_when_available() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker client without the compose plugin; the YAML is checked by the tests above")
    r = subprocess.run([docker, "compose", "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
                       capture_output=True, text=True, cwd=REPO, check=False)
    assert r.returncode == 0, r.stderr
