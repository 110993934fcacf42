"""compose.yaml and deploy/Dockerfile cannot run here (no Docker engine): check what can be checked
without it. Data lands on the volumes (the paths the images write to), the broker has the settings
of deploy/local/kafka, every blogpulse command is one the real CLI parser accepts, every variable set
for blogpulse is one the code reads, every service has a health check, the image installs its
dependencies before the source and does not run as root."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from streams.cli import build_parser
from streams.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
OUR_IMAGE = "deploy/Dockerfile"
# Where each image keeps its data when nothing overrides it.
IMAGE_DATA_DIR = {
    "postgres": "/var/lib/postgresql/data",  # the image's PGDATA
    "apache/kafka": "/tmp/kraft-combined-logs",
}  # log.dirs of the image's default config
# deploy/local/kafka settings that name this host; compose names its own network instead.
# set per node, and with a SASL_SSL listener when deploy/local adds one
HOST_SPECIFIC = {
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "log.dirs",
    "listener.security.protocol.map",
}


def _compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def _services() -> dict:
    return _compose()["services"]


def _ours() -> dict:
    """The services built from our Dockerfile."""
    return {
        n: s for n, s in _services().items() if s.get("build", {}).get("dockerfile") == OUR_IMAGE
    }


def _image(svc: dict) -> str:
    return svc.get("image", "").rpartition(":")[0]


def _mounts(svc: dict) -> dict[str, str]:
    """mount target -> source"""
    out = {}
    for vol in svc.get("volumes", []):
        parts = vol.split(":")
        out[parts[1]] = parts[0]
    return out


def test_compose_has_every_service():
    assert set(_services()) == {
        "kafka",
        "postgres",
        "prometheus",
        "grafana",
        "worker",
        "ingest",
        "poller",
    }
    assert set(_ours()) == {"worker", "ingest", "poller"}
    assert _services()["poller"]["profiles"] == ["poller"]  # it needs a config file to start


def test_compose_kafka_version_matches_local_broker():
    pom = (REPO / "deploy/local/conf/kafka-pom.xml").read_text()
    local_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)
    lib = (REPO / "deploy/local/lib.sh").read_text()
    assert f"KAFKA_VERSION=${{BLOGPULSE_KAFKA_VERSION:-{local_version}}}" in lib
    image = _services()["kafka"]["image"]
    assert image == f"apache/kafka:{local_version}"


def test_compose_mounts_exist_and_depends_on_services():
    services = _services()
    for name, svc in services.items():
        for _target, src in _mounts(svc).items():
            if src.startswith("./"):
                assert (REPO / src).exists(), f"{name} mounts missing {src}"
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
    for svc in _ours().values():
        assert (REPO / svc["build"]["context"] / svc["build"]["dockerfile"]).exists()


def test_data_is_kept_where_each_image_writes_it():
    services, volumes = _services(), set(_compose()["volumes"])
    kafka = services["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert log_dirs != IMAGE_DATA_DIR["apache/kafka"]
    assert _mounts(kafka)[log_dirs] == "kafka-data"  # the broker writes onto the volume
    postgres = services["postgres"]
    pgdata = postgres.get("environment", {}).get("PGDATA", IMAGE_DATA_DIR["postgres"])
    assert _mounts(postgres)[pgdata] == "pg-data"
    prometheus = services["prometheus"]
    tsdb = [
        a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--storage.tsdb.path=")
    ]
    assert tsdb and _mounts(prometheus)[tsdb[0]] == "prometheus-data"
    poller = services["poller"]
    state = poller["command"][poller["command"].index("--state-file") + 1]
    assert _mounts(poller)[str(Path(state).parent)] == "poller-state"
    assert str(Path(state).parent) == _dockerfile_value(
        "WORKDIR"
    )  # the image creates it for its user
    used = {src for svc in services.values() for src in _mounts(svc).values()}
    assert volumes <= used, f"declared but never mounted: {volumes - used}"


# deploy/local/kafka writes one file per node; compose runs one node: node 1 of a cluster of 1.
SINGLE_NODE = {"$i": "1", "$INTERNAL_RF": "1", "$INTERNAL_MIN_ISR": "1"}


def _local_kafka_settings() -> dict[str, str]:
    script = (REPO / "deploy/local/kafka").read_text()
    block = script.split("<<CONF", 1)[1].split("\nCONF", 1)[0]
    settings = dict(
        line.split("=", 1) for line in block.splitlines() if re.match(r"[a-z][a-z.]*=", line)
    )
    return {k: SINGLE_NODE.get(v, v) for k, v in settings.items()}


def test_broker_settings_match_deploy_local():
    local = _local_kafka_settings()
    assert "transaction.state.log.num.partitions" in local and "log.segment.bytes" in local
    env = _services()["kafka"]["environment"]
    compose = {
        k[len("KAFKA_") :].lower().replace("_", "."): str(v)
        for k, v in env.items()
        if k.startswith("KAFKA_")
    }
    want = {k: v for k, v in local.items() if k not in HOST_SPECIFIC}
    got = {k: v for k, v in compose.items() if k not in HOST_SPECIFIC}
    assert got == want


def _blogpulse_commands(command) -> list[list[str]]:
    """The blogpulse invocations of a compose command or Dockerfile CMD (a list, or sh -c "a && b")."""
    argv = command if isinstance(command, list) else shlex.split(command)
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [argv]


def _blogpulse_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_command_is_one_the_cli_accepts():
    commands = [c for svc in _ours().values() for c in _blogpulse_commands(svc["command"])]
    cmd = re.search(r"^CMD (\[.*\])$", (REPO / OUR_IMAGE).read_text(), re.M).group(1)
    commands += _blogpulse_commands(yaml.safe_load(cmd))
    assert len(commands) == 5
    listed = re.findall(r"^    ([a-z-]+) ", _blogpulse_help(), re.M)  # the COMMAND list
    assert {"worker", "ingest", "poll", "db"} <= set(listed)
    parser = build_parser()
    for argv in commands:
        assert argv[0] == "blogpulse", argv
        assert argv[1] in listed, f"{argv[1]} is not in `blogpulse --help`"
        try:
            parser.parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"the blogpulse parser rejects {shlex.join(argv)}")


def test_every_variable_set_for_blogpulse_is_read_by_the_code():
    from streams.settings import Settings, env_name

    read = {env_name(field) for field in Settings.model_fields}  # the one settings model
    for name, svc in _ours().items():
        for var in svc["environment"]:
            assert var.startswith("BLOGPULSE_"), f"{name}: {var}"
            assert var in read, f"{name} sets {var}, which the settings model does not read"


def test_required_secrets_are_in_the_readme():
    required = set(re.findall(r"\$\{(\w+):\?", (REPO / "compose.yaml").read_text()))
    assert required == {"BLOGPULSE_AUTHOR_SECRET", "BLOGPULSE_INGEST_SECRET"}
    readme = (REPO / "README.md").read_text()
    docker_part = readme.split("## With Docker", 1)[1].split("\n## ", 1)[0]
    assert "must be set" in docker_part
    for var in required:
        assert re.search(rf"\b{var}=\S", docker_part), f"README does not show how to set {var}"


def test_every_service_has_a_health_check_and_waits_for_healthy_ones():
    services = _services()
    for name, svc in services.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        deps = svc.get("depends_on", {})
        for dep, cond in deps.items() if isinstance(deps, dict) else []:
            assert cond["condition"] == "service_healthy", f"{name} -> {dep}"
    worker_check = " ".join(services["worker"]["healthcheck"]["test"])
    assert (
        f"127.0.0.1:{load_settings().web_port}/metrics" in worker_check
    )  # where the worker serves them
    assert "BLOGPULSE_WEB_PORT" not in services["worker"]["environment"]
    ingest = services["ingest"]
    port = ingest["command"][ingest["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(ingest["healthcheck"]["test"])
    assert 'add_get("/healthz"' in (REPO / "streams/ingest/http.py").read_text()
    assert f"{port}:{port}" in ingest["ports"]


def _dockerfile() -> list[str]:
    text = (REPO / OUR_IMAGE).read_text().replace("\\\n", "")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _dockerfile_value(instruction: str) -> str:
    return [line.split(None, 1)[1] for line in _dockerfile() if line.startswith(instruction + " ")][
        -1
    ]


def test_image_installs_dependencies_before_the_source_and_runs_as_a_user():
    lines = _dockerfile()
    first_source = min(
        i for i, line in enumerate(lines) if re.match(r"COPY (schemas|streams|sinks) ", line)
    )
    deps = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    assert deps < first_source  # the dependency layer does not depend on the source
    assert all(
        re.match(r"COPY (pyproject\.toml|README\.md) ", line)
        for line in lines[:deps]
        if line.startswith("COPY")
    )
    assert any(line.startswith("RUN pip install --no-deps .") for line in lines[first_source:])
    user = _dockerfile_value("USER")
    assert user not in ("root", "0")
    assert lines.index(f"USER {user}") < next(
        i for i, line in enumerate(lines) if line.startswith("CMD")
    )


def test_image_dependency_list_is_the_projects(tmp_path):
    """Run the Dockerfile's own requirements one-liner: it lists the dependencies and the postgres
    extra of pyproject.toml (compose uses PostgreSQL)."""
    run = next(line for line in _dockerfile() if "pip install -r" in line)
    snippet = re.search(r'python -c "(.*?)" >', run).group(1)
    result = subprocess.run(
        ["sh", "-c", f'python -c "{snippet}"'], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["postgres"]
    assert result.stdout.split("\n")[:-1] == project["dependencies"] + extra
    assert any(r.startswith("psycopg") for r in result.stdout.split())
