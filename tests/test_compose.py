"""docker-compose.yaml, Dockerfile and .dockerignore wire the stack the README promises (no Docker needed).

The compose file is read with PyYAML and its ``${VAR:-default}`` placeholders are filled the way
Compose fills them; the Infobip connection it defines is then handed to the real ``InfobipHook``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from infobip_provider.errors import InfobipConfigError
from infobip_provider.hooks.infobip import InfobipHook
from tests.conftest import ROOT

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
)
COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
STATE_PATH = "/opt/airflow/infobip_state"
_PLACEHOLDER = re.compile(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """What Compose does to a value: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$$``."""

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if op == ":-" and not value:
            return default
        if op == "-" and value is None:
            return default
        return value or ""

    return _PLACEHOLDER.sub(fill, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    assert name in compose["services"], f"service {name} missing"
    return compose["services"][name]


def env_of(compose: dict[str, Any], name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (service(compose, name).get("environment") or {}).items()}


def mounts(compose: dict[str, Any], name: str) -> dict[str, str]:
    """Container path -> source (interpolated with no variables set)."""
    found = {}
    for entry in service(compose, name).get("volumes") or []:
        source, target = interpolate(entry, {}).split(":")[:2]
        found[target] = source
    return found


def connection(
    compose: dict[str, Any], env: dict[str, str], name: str = "AIRFLOW_CONN_INFOBIP_DEFAULT"
) -> str:
    return interpolate(env_of(compose, "airflow-worker")[name], env)


def sandbox_args(compose: dict[str, Any]) -> dict[str, str]:
    command = service(compose, "infobip-sandbox")["command"]
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    assert args[0] == "infobip-sandbox"
    return dict(zip(args[1::2], args[2::2]))


# ---------------------------------------------------------------------------------------- the stack
def test_the_official_celery_stack_is_all_there(compose: dict[str, Any]) -> None:
    for name in (*AIRFLOW_SERVICES, "postgres", "redis", "infobip-sandbox"):
        service(compose, name)
    for name, command in COMMANDS.items():
        assert service(compose, name)["command"] == command, name
    init_env = env_of(compose, "airflow-init")
    assert init_env["_AIRFLOW_DB_MIGRATE"] == "true"
    for name in AIRFLOW_SERVICES:
        env = env_of(compose, name)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:@redis:6379/"), name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", (
            name
        )
        assert service(compose, name)["depends_on"]["postgres"]["condition"] == "service_healthy", name
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker"):
        assert (
            service(compose, name)["depends_on"]["airflow-init"]["condition"]
            == "service_completed_successfully"
        )


def test_the_image_is_built_here_and_nothing_is_pip_installed_at_start(compose: dict[str, Any]) -> None:
    image = service(compose, "airflow-worker")["image"]
    for name in (*AIRFLOW_SERVICES, "infobip-sandbox"):
        assert service(compose, name)["build"] == ".", name
        assert service(compose, name)["image"] == image, name
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env_of(compose, name), name
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in (ROOT / "docker-compose.yaml").read_text()


def test_dags_include_and_the_state_volume_are_in_every_airflow_container(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        found = mounts(compose, name)
        assert found.get("/opt/airflow/dags") == "./dags", name
        assert found.get("/opt/airflow/include") == "./include", name
        assert found.get(STATE_PATH) == "infobip-state", name
        assert env_of(compose, name)["INFOBIP_INCLUDE_DIR"] == "/opt/airflow/include", name
    assert {"infobip-state", "sandbox-state"} <= set(compose["volumes"])


def test_the_sandbox_runs_from_the_same_image_with_its_state_in_a_volume(compose: dict[str, Any]) -> None:
    sandbox = service(compose, "infobip-sandbox")
    args = sandbox_args(compose)
    assert args["--host"] == "0.0.0.0"
    assert args["--port"] == "8765"
    assert args["--api-key"] == "sandbox-key"
    assert float(args["--cooldown-scale"]) == 0.01
    state_dir = args["--state"].rsplit("/", 1)[0]
    assert mounts(compose, "infobip-sandbox").get(state_dir) == "sandbox-state"
    # The image's entrypoint would run it as an airflow sub-command.
    assert sandbox["entrypoint"][0] == "/usr/bin/dumb-init"
    assert all(not port.startswith("8765") for port in sandbox.get("ports", [])), "admin API only on loopback"


# ---------------------------------------------------------------------------------------- connections
def test_the_default_connection_is_the_sandbox_with_the_redis_gate(compose: dict[str, Any]) -> None:
    conn = json.loads(connection(compose, {}))
    args = sandbox_args(compose)
    extra = conn["extra"]
    assert conn["conn_type"] == "infobip"
    assert conn["host"] == f"http://infobip-sandbox:{args['--port']}"
    assert conn["password"] == args["--api-key"]
    assert extra["cooldown_scale"] == float(args["--cooldown-scale"])
    assert extra["cooldown_backend"] == "redis"
    assert extra["state_uri"] == STATE_PATH
    assert extra["allow_insecure_http"] is True
    broker_db = env_of(compose, "airflow-worker")["AIRFLOW__CELERY__BROKER_URL"].rsplit("/", 1)[1]
    assert extra["cooldown_redis_url"].startswith("redis://redis:6379/")
    assert extra["cooldown_redis_url"].rsplit("/", 1)[1] != broker_db, "the gate keeps out of Celery's db"
    conns = {name: connection(compose, {}) for name in AIRFLOW_SERVICES}
    assert len(set(conns.values())) == 1, "every Airflow container must see the same connection"


def test_the_hook_accepts_the_compose_connection(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", connection(compose, {}))
    hook = InfobipHook()
    assert hook.base_url == "http://infobip-sandbox:8765"
    assert hook.cooldown_scale == 0.01
    assert hook.state_uri == STATE_PATH
    assert hook.interval("lists.add") == pytest.approx(0.1)


def test_a_real_account_needs_only_variables(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "INFOBIP_BASE_URL": "abc123.api.infobip.com",
        "INFOBIP_API_KEY": "0123456789abcdef-real-key",
        "INFOBIP_COOLDOWN_SCALE": "1.0",
        "INFOBIP_ALLOW_INSECURE_HTTP": "false",
        "INFOBIP_SENDER": "Acme",
    }
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", connection(compose, env))
    hook = InfobipHook()
    assert hook.base_url == "https://abc123.api.infobip.com"
    assert hook.cooldown_scale == 1.0
    assert hook.defaults["sender"] == "Acme"
    assert hook.interval("lists.add") == pytest.approx(10.0)


def test_plain_http_to_the_sandbox_host_is_only_allowed_by_the_switch(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_INFOBIP_DEFAULT", connection(compose, {"INFOBIP_ALLOW_INSECURE_HTTP": "false"})
    )
    with pytest.raises(InfobipConfigError, match="Refusing plain http for infobip-sandbox"):
        _ = InfobipHook().base_url


def test_the_warehouse_connection_is_the_demo_sqlite_under_include(compose: dict[str, Any]) -> None:
    conn = json.loads(connection(compose, {}, "AIRFLOW_CONN_WAREHOUSE_DEFAULT"))
    assert conn["conn_type"] == "sqlite"
    relative = Path(conn["host"]).relative_to("/opt/airflow/include")
    builder = ROOT / "include" / relative.parent / "build_warehouse.py"
    assert builder.is_file(), f"{builder} builds {relative}"
    init = " ".join(service(compose, "airflow-init")["command"])
    assert f"/opt/airflow/include/{relative.parent}/build_warehouse.py --if-missing" in init


# ---------------------------------------------------------------------------------------- the image
def _dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_dockerfile_installs_this_package_pinned_on_airflow_3_3_2() -> None:
    lines = _dockerfile()
    assert lines[0].split()[1].startswith("apache/airflow:3.3.2"), lines[0]
    copies = [line.split()[1:] for line in lines if line.startswith("COPY")]
    sources = [arg for args in copies for arg in args[:-1] if not arg.startswith("--")]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    installs = [line for line in lines if line.startswith("RUN pip install")]
    assert len(installs) == 1
    assert "--constraint /opt/infobip-provider/constraints.txt" in installs[0]
    assert '"/opt/infobip-provider[redis,postgres,celery]"' in installs[0]
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in installs[0], "pip must not move Airflow itself"


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "exclude everything, then allow what the Dockerfile copies"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    sources = {
        arg.rstrip("/")
        for line in _dockerfile()
        if line.startswith("COPY")
        for arg in line.split()[1:-1]
        if not arg.startswith("--")
    }
    assert sources <= allowed, f"COPY sources not in the build context: {sources - allowed}"
    assert not {".env", ".venv", ".git", "tests"} & allowed
