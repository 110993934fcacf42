"""compose.yaml cannot run here (no Docker engine); keep it parseable and in step with deploy/local."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose():
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_compose_has_every_service():
    assert set(_compose()["services"]) == {"kafka", "postgres", "prometheus", "grafana", "worker"}


def test_compose_kafka_version_matches_local_broker():
    pom = (REPO / "deploy/local/conf/kafka-pom.xml").read_text()
    local_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)
    lib = (REPO / "deploy/local/lib.sh").read_text()
    assert f"KAFKA_VERSION=${{BLOGPULSE_KAFKA_VERSION:-{local_version}}}" in lib
    image = _compose()["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{local_version}"


def test_compose_mounts_exist_and_depends_on_services():
    services = _compose()["services"]
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (REPO / src).exists(), f"{name} mounts missing {src}"
        deps = svc.get("depends_on", [])
        for dep in deps:
            assert dep in services, f"{name} depends on unknown {dep}"
    build = services["worker"]["build"]
    assert (REPO / build["context"] / build["dockerfile"]).exists()


def test_compose_worker_settings_are_real_settings():
    from streams import config

    source = Path(config.__file__).read_text()
    for var in _compose()["services"]["worker"]["environment"]:
        assert f'"{var}"' in source or var == "BLOGPULSE_AUTHOR_SECRET", f"{var} is not read by streams/config.py"
