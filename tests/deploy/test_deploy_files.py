"""The deployment files (SPEC S10.8) hold together without Docker, systemd or Kubernetes.

Every command a container, unit or chart runs must parse as a real ``relay`` command line; every
``RELAY_*`` variable they set must be accepted by the settings loader with the effect intended;
probe paths must be endpoints the server has. ``systemd-analyze`` verifies the units when it is
installed; the Helm chart is rendered by ``helm template`` when installed, else by ``helmlite``
(the subset of Go templates the chart uses), and its manifests are checked as Kubernetes objects.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from relay_adapters.settings import load_settings
from relay_server.cli import app
from relay_server.controllers import health

from . import helmlite

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = "/var/lib/relay"
RELAY_BIN = "/opt/relay/bin/relay"


# --- helpers --------------------------------------------------------------------------------------


def relay_command(argv: Sequence[str]) -> None:
    """Fail unless ``relay <argv>`` names an existing command with options it accepts."""
    assert argv, "empty command"
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, f"`relay {shlex.join(argv)}` is not a valid command: {result.output}"
    # `--help` of a group lists its commands; a runnable command shows its own usage line.
    assert "Commands" not in result.output, f"`relay {shlex.join(argv)}` names a command group, not a command"


def health_paths() -> set[str]:
    return {path for handler in (health.healthz, health.livez, health.readyz) for path in handler.paths}


_VAR = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Compose-style ``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}`` substitution."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3]
        if values.get(name):
            return values[name]
        if op == "-":
            return arg
        raise AssertionError(f"${{{name}}} is required: {arg}")

    return _VAR.sub(sub, text)


def load_compose(*names: str, values: Mapping[str, str]) -> dict[str, Any]:
    """The files merged like ``docker compose -f a -f b`` (mappings merged, lists and scalars replaced)."""

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            out = dict(base)
            for key, value in over.items():
                out[key] = merge(base[key], value) if key in base else value
            return out
        return over

    merged: dict[str, Any] = {}
    for name in names:
        merged = merge(merged, yaml.safe_load(interpolate((ROOT / name).read_text(), values)))
    return merged


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def http_paths(text: str) -> set[str]:
    return set(re.findall(r"http://127\.0\.0\.1:8080(/[a-z]+)", text))


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the final stage... and earlier ones, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def test_dockerfile_runs_relay_as_a_non_root_user_with_a_data_volume() -> None:
    steps = dockerfile()
    froms = [arg for ins, arg in steps if ins == "FROM"]
    assert froms
    assert all(re.match(r"python:3\.1[1-9][\w.-]*-slim", f.split()[0]) for f in froms), froms
    final = steps[max(i for i, (ins, _) in enumerate(steps) if ins == "FROM") :]
    users = [arg for ins, arg in final if ins == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    env = " ".join(arg for ins, arg in final if ins == "ENV")
    assert "RELAY_SERVER__HOST=0.0.0.0" in env
    assert f"RELAY_DATA_DIR={DATA_DIR}" in env
    settings = load_settings(
        dict(re.findall(r"(RELAY_\w+)=(\S+)", env)) | {"RELAY_COMMIT": "x"}  # RELAY_COMMIT is no setting
    )
    assert settings.server.host == "0.0.0.0"  # noqa: S104 - compared, not bound
    assert str(settings.data_dir) == DATA_DIR
    assert [arg for ins, arg in final if ins == "VOLUME"] == [f'["{DATA_DIR}"]']
    [entrypoint] = [arg for ins, arg in final if ins == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint) == ["relay"]
    [cmd] = [arg for ins, arg in final if ins == "CMD"]
    relay_command(yaml.safe_load(cmd))
    [healthcheck] = [arg for ins, arg in final if ins == "HEALTHCHECK"]
    assert http_paths(healthcheck) == {"/livez"}
    assert http_paths(healthcheck) <= health_paths()


def test_dockerfile_installs_the_four_distributions_it_copies() -> None:
    steps = dockerfile()
    for ins, arg in steps:
        if ins == "COPY" and "--from" not in arg:
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} does not exist"
    installs = " ".join(arg for ins, arg in steps if ins == "RUN" and "pip install" in arg)
    installed = set(re.findall(r"\./packages/([\w-]+)", installs))
    assert installed == {p.parent.name for p in ROOT.glob("packages/*/pyproject.toml")}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv*" in ignored
    assert ".git" in ignored


# --- docker compose -------------------------------------------------------------------------------

PROD_VALUES = {
    "POSTGRES_PASSWORD": "pg-secret-1",
    "RELAY_SECRET_KEY": "s" * 10 + "0123456789abcdefghijklmnopqrstuv",
}


def test_compose_runs_web_scheduler_and_worker_on_one_sqlite_volume() -> None:
    compose = load_compose("docker-compose.yml", values={})
    services = compose["services"]
    assert set(services) == {"relay-web", "relay-scheduler", "relay-worker"}
    assert "relay-data" in compose["volumes"]
    for name, service in services.items():
        relay_command(service["command"])
        assert f"relay-data:{DATA_DIR}" in service["volumes"], name
        env = env_of(service)
        assert env["RELAY_DATA_DIR"] == DATA_DIR
        settings = load_settings(env)
        assert settings.database_url == f"sqlite:///{DATA_DIR}/relay.db"
        assert not settings.redis.url
        assert settings.simulator_enabled is False, "the simulator is off in a deployment"
        assert settings.voice.providers_dir.startswith("/etc/relay/")
    web = services["relay-web"]
    assert web["command"][:2] == ["serve", "--migrate"]
    assert {"--no-worker", "--no-scheduler"} <= set(web["command"])
    assert web["ports"] == ["127.0.0.1:8080:8080"]
    assert load_settings(env_of(web)).server.host == "0.0.0.0"  # noqa: S104
    assert http_paths(" ".join(web["healthcheck"]["test"])) <= health_paths()
    assert services["relay-worker"]["command"][0] == "worker"
    assert services["relay-scheduler"]["command"][0] == "scheduler"
    for name in ("relay-worker", "relay-scheduler"):
        assert services[name]["depends_on"] == {"relay-web": {"condition": "service_healthy"}}
        assert services[name]["healthcheck"] == {"disable": True}, "no HTTP server to probe"


def test_compose_documents_the_single_service_variant() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    commented = "\n".join(
        line.strip().removeprefix("#") for line in text.splitlines() if line.strip().startswith("#")
    )
    variant = commented[commented.index("relay:\n") :]
    assert "<<: *relay\n" in variant
    [command] = re.findall(r"command: (\[.*\])", variant)[:1]
    assert yaml.safe_load(command) == ["serve"]
    assert "# - ./providers/voice:/etc/relay/voice_providers:ro" in text


def test_postgres_override_adds_postgres_redis_and_production_settings() -> None:
    compose = load_compose("docker-compose.yml", "docker-compose.postgres.yml", values=PROD_VALUES)
    services = compose["services"]
    assert {"postgres", "redis", "relay-web", "relay-worker", "relay-scheduler"} == set(services)
    assert services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    env_pg = env_of(services["postgres"])
    for name in ("relay-web", "relay-worker", "relay-scheduler"):
        service = services[name]
        relay_command(service["command"])
        settings = load_settings(env_of(service))
        assert settings.is_postgres
        assert settings.database_url == (
            f"postgresql://{env_pg['POSTGRES_USER']}:{env_pg['POSTGRES_PASSWORD']}@postgres:5432/{env_pg['POSTGRES_DB']}"
        )
        assert settings.redis.url == "redis://redis:6379/0"
        assert settings.main.secret_key == PROD_VALUES["RELAY_SECRET_KEY"]
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert "--migrate" in services["relay-web"]["command"]
    assert services["relay-worker"]["depends_on"]["relay-web"] == {"condition": "service_healthy"}


def test_postgres_override_refuses_to_start_without_its_secrets() -> None:
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        load_compose(
            "docker-compose.yml", "docker-compose.postgres.yml", values={"RELAY_SECRET_KEY": "x" * 40}
        )
    with pytest.raises(AssertionError, match="RELAY_SECRET_KEY"):
        load_compose("docker-compose.yml", "docker-compose.postgres.yml", values={"POSTGRES_PASSWORD": "p"})


# --- systemd --------------------------------------------------------------------------------------

UNITS = ROOT / "deploy" / "systemd"
LONG_RUNNING = ("relay.service", "relay-web.service", "relay-worker.service", "relay-scheduler.service")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text(), source=name)
    return parser


def exec_argv(parser: configparser.ConfigParser) -> list[str]:
    argv = shlex.split(parser["Service"]["ExecStart"])
    assert argv[0] == RELAY_BIN
    return argv[1:]


@pytest.mark.parametrize("name", [*LONG_RUNNING, "relay-migrate.service"])
def test_systemd_unit_is_hardened_and_runs_a_relay_command(name: str) -> None:
    parser = unit(name)
    assert set(parser.sections()) == {"Unit", "Service", "Install"}
    service = parser["Service"]
    relay_command(exec_argv(parser))
    assert service["User"] == "relay"
    assert service["EnvironmentFile"] == "/etc/relay/relay.env"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == DATA_DIR, "the data dir is the only writable path"
    assert service["WorkingDirectory"] == DATA_DIR
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    if name in LONG_RUNNING:
        assert service["Restart"] == "on-failure"
        assert "relay-migrate.service" in parser["Unit"]["After"].split()


def test_systemd_topologies() -> None:
    """relay.service is the embedded process; web/worker/scheduler split it; migrate runs first."""
    assert exec_argv(unit("relay.service")) == ["serve"]
    assert exec_argv(unit("relay-web.service")) == ["serve", "--no-worker", "--no-scheduler"]
    assert exec_argv(unit("relay-worker.service")) == ["worker"]
    assert exec_argv(unit("relay-scheduler.service")) == ["scheduler"]
    migrate = unit("relay-migrate.service")
    assert exec_argv(migrate) == ["migrate"]
    assert migrate["Service"]["Type"] == "oneshot"
    assert set(migrate["Unit"]["Before"].split()) == set(LONG_RUNNING)
    conflicts = set(unit("relay.service")["Unit"]["Conflicts"].split())
    assert conflicts == {"relay-web.service", "relay-worker.service", "relay-scheduler.service"}
    for name in ("relay-web.service", "relay-worker.service", "relay-scheduler.service"):
        assert unit(name)["Unit"]["Requires"] == "relay-migrate.service"


def test_systemd_examples_are_valid_settings(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    names: set[str] = set()
    for line in (UNITS / "relay.env.example").read_text().splitlines():
        match = re.match(r"#?(RELAY_\w+)=(.*)", line.strip())
        if match:
            names.add(match[1])
            if not line.startswith("#"):
                env[match[1]] = match[2]
    assert {"RELAY_DATABASE_URL", "RELAY_REDIS_URL", "RELAY_SECRET_KEY"} <= names
    # Every variable, commented or not, is one the settings loader understands (it lands somewhere).
    trial = {name: "x" for name in names} | {
        "RELAY_DATABASE_URL": "postgresql://relay:pw@db/relay",
        "RELAY_SECRET_KEY": "k" * 16 + "0123456789abcdef",
        "RELAY_CONFIG_FILE": str(UNITS / "relay.toml.example"),
        "RELAY_DATA_DIR": DATA_DIR,
    }
    settings = load_settings(trial)
    assert settings.smtp.password == "x"
    assert settings.voice_provider["api_token"] == "x"
    settings = load_settings(env | {"RELAY_CONFIG_FILE": str(UNITS / "relay.toml.example")})
    assert settings.server.public_base_url.startswith("https://")
    assert settings.server.host == "127.0.0.1"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    relay = Path(sys.executable).with_name("relay")
    assert relay.exists()
    for path in UNITS.glob("*.service"):
        (tmp_path / path.name).write_text(path.read_text().replace(RELAY_BIN, str(relay)))
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Every complaint about a unit names its file (unknown keys, bad values, missing executables).
    problems = [line for line in (result.stdout + result.stderr).splitlines() if ".service" in line]
    assert not problems, problems


# --- Helm chart -----------------------------------------------------------------------------------

CHART = ROOT / "charts" / "relay"
_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


def templates() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((CHART / "templates").iterdir()) if p.is_file()}


def test_chart_metadata_and_values() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "relay"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["mode"] in ("production", "embedded")
    assert values["scheduler"]["replicas"] >= 1
    assert values["service"]["port"] == 8080
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["securityContext"]["allowPrivilegeEscalation"] is False


def tomllib_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value) + '"'


def test_chart_config_values_are_settings(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    toml = "\n".join(
        f"[{section}]\n" + "\n".join(f"{k} = {tomllib_value(v)}" for k, v in keys.items())
        for section, keys in values["config"].items()
    )
    config = tmp_path / "relay.toml"
    config.write_text(toml)
    settings = load_settings({"RELAY_CONFIG_FILE": str(config)})
    assert settings.server.public_base_url == values["config"]["server"]["public_base_url"]


def test_chart_templates_are_consistent() -> None:
    """Balanced blocks, defined includes, existing values, and YAML once the actions are removed."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    files = templates()
    defined = set(re.findall(r'define "([\w.]+)"', files["_helpers.tpl"]))
    for name, text in files.items():
        actions = _ACTION.findall(text)
        opened = sum(1 for a in actions if re.match(r"(if|range|with|define)\b", a))
        closed = sum(1 for a in actions if a == "end")
        assert opened == closed, f"{name}: {opened} blocks opened, {closed} closed"
        for included in re.findall(r'include "([\w.]+)"', text):
            assert included in defined, f"{name}: include of undefined {included}"
        for ref in re.findall(r"\.Values((?:\.\w+)+)", text):
            node: Any = values
            for part in ref.strip(".").split("."):
                assert isinstance(node, dict), f"{name}: .Values{ref} goes through a non-mapping"
                assert part in node, f"{name}: .Values{ref} is not in values.yaml"
                node = node[part]
        if name.endswith(".yaml"):
            skeleton = "\n".join(
                _ACTION.sub("X", line)
                for line in text.splitlines()
                if not re.fullmatch(r"\s*{{-?.*-?}}\s*", line)  # lines that are only an action
            )
            for document in yaml.safe_load_all(skeleton):
                assert document is None or "kind" in document, name


def test_chart_runs_real_commands_with_probes_on_real_endpoints() -> None:
    files = templates()
    text = "\n".join(files.values())
    kinds = set(re.findall(r"^kind: (\w+)", text, re.M))
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "Job",
        "PodDisruptionBudget",
        "Ingress",
        "ServiceMonitor",
        "PersistentVolumeClaim",
    } <= kinds
    for component in ("web", "worker", "scheduler"):
        assert f"deployment-{component}.yaml" in files
    commands = []
    for match in re.findall(r"args: (\[.*\])", text):
        commands.append(yaml.safe_load(_ACTION.sub('"8"', match)))
    assert ["serve", "--no-worker", "--no-scheduler"] in commands
    assert ["serve"] in commands, "embedded mode"
    assert ["scheduler"] in commands
    assert ["migrate"] in commands
    assert any(c[0] == "worker" for c in commands)
    for command in commands:
        relay_command(command)
    probes = set(re.findall(r"path: (/\w+)", files["deployment-web.yaml"]))
    assert probes == {"/livez", "/readyz"}
    assert probes <= health_paths()
    job = files["job-migrate.yaml"]
    assert "helm.sh/hook: pre-install,pre-upgrade" in job
    assert "checksum/config" in files["_helpers.tpl"]
    assert 'include "relay.checksums"' in files["deployment-web.yaml"]
    assert "toToml" in files["configmap.yaml"]


PRODUCTION = {
    "secrets": {
        "RELAY_DATABASE_URL": "postgresql://relay:pw@postgres:5432/relay",
        "RELAY_REDIS_URL": "redis://redis:6379/0",
        "RELAY_SECRET_KEY": PROD_VALUES["RELAY_SECRET_KEY"],
    }
}


def rendered(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chart's manifests for ``values``: helm when installed, else the test's own renderer."""
    if shutil.which("helm"):
        args = ["helm", "template", "relay", str(CHART), "--values", "-"]
        result = subprocess.run(
            args, input=yaml.safe_dump(dict(values)), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise helmlite.TemplateError(result.stderr)
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    docs = []
    for name, text in helmlite.render_chart(CHART, values).items():
        if name.endswith(".yaml"):
            docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def container_settings(doc: Mapping[str, Any], docs: list[dict[str, Any]], tmp_path: Path) -> Any:
    """The settings a container of ``doc`` would load: its env, the Secret, the ConfigMap's TOML."""
    kinds = by_kind(docs)
    [config_map] = kinds["ConfigMap"]
    config = tmp_path / "relay.toml"
    config.write_text(config_map["data"]["relay.toml"])
    [container] = doc["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: str(item["value"]) for item in container["env"]}
    secrets = {s["metadata"]["name"]: s.get("stringData") or {} for s in kinds.get("Secret", [])}
    for source in container["envFrom"]:
        env.update(secrets[source["secretRef"]["name"]])
    env["RELAY_CONFIG_FILE"] = str(config)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/etc/relay"
    assert mounts["data"] == DATA_DIR
    return load_settings(env)


def test_chart_production_mode_renders_three_roles_on_postgresql(tmp_path: Path) -> None:
    docs = rendered(PRODUCTION)
    kinds = by_kind(docs)
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in kinds["Deployment"]}
    assert set(deployments) == {"web", "worker", "scheduler"}
    assert "PersistentVolumeClaim" not in kinds
    assert deployments["web"]["spec"]["replicas"] == 2
    assert deployments["scheduler"]["spec"]["replicas"] == 2
    for component, deployment in deployments.items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        relay_command(container["args"])
        settings = container_settings(deployment, docs, tmp_path)
        assert settings.is_postgres, component
        assert settings.redis.url == "redis://redis:6379/0"
        assert settings.server.public_base_url == "https://relay.example.com"
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
        assert {"checksum/config", "checksum/secret"} <= set(pod["metadata"]["annotations"])
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    web = deployments["web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["args"] == ["serve", "--no-worker", "--no-scheduler"]
    probes = {web[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes == {"/livez", "/readyz"}
    assert probes <= health_paths()
    [job] = kinds["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert container_settings(job, docs, tmp_path).is_postgres
    # The Job reads the ConfigMap and the Secret, so they are hooks created before it.
    for kind in ("ConfigMap", "Secret"):
        [doc] = kinds[kind]
        hook = doc["metadata"]["annotations"]
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(hook["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    [service] = kinds["Service"]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["selector"] == deployments["web"]["spec"]["selector"]["matchLabels"]
    pdbs = kinds["PodDisruptionBudget"]
    assert len(pdbs) == 3
    assert {p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for p in pdbs} == set(
        deployments
    )
    assert "Ingress" not in kinds
    assert "ServiceMonitor" not in kinds


def test_chart_config_change_changes_the_checksum() -> None:
    def checksum(values: Mapping[str, Any]) -> str:
        [web] = [
            d
            for d in rendered(values)
            if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-web")
        ]
        return str(web["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    other = {**PRODUCTION, "config": {"server": {"public_base_url": "https://other.example.com"}}}
    assert checksum(PRODUCTION) == checksum(PRODUCTION)
    assert checksum(PRODUCTION) != checksum(other)


def test_chart_embedded_mode_is_one_relay_serve_on_a_volume(tmp_path: Path) -> None:
    docs = rendered({"mode": "embedded"})
    kinds = by_kind(docs)
    [deployment] = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["serve"]
    [claim] = kinds["PersistentVolumeClaim"]
    [data] = [v for v in pod["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "Job" not in kinds, "relay serve migrates SQLite itself"
    assert "PodDisruptionBudget" not in kinds
    settings = container_settings(deployment, docs, tmp_path)
    assert settings.database_url == f"sqlite:///{DATA_DIR}/relay.db"


def test_chart_refuses_production_without_a_database() -> None:
    with pytest.raises(helmlite.TemplateError, match="PostgreSQL"):
        rendered({})
    with pytest.raises(helmlite.TemplateError, match="production or embedded"):
        rendered({"mode": "cluster"})


def test_chart_optional_ingress_and_service_monitor() -> None:
    docs = rendered(
        {
            **PRODUCTION,
            "ingress": {"enabled": True, "className": "nginx", "host": "relay.example.org"},
            "serviceMonitor": {"enabled": True},
            "existingSecret": "my-relay-secrets",
        }
    )
    kinds = by_kind(docs)
    [ingress] = kinds["Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "relay.example.org"
    [service] = kinds["Service"]
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == service["metadata"]["name"]
    [monitor] = kinds["ServiceMonitor"]
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert "Secret" not in kinds, "existingSecret: the chart makes none"
    for deployment in kinds["Deployment"]:
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": "my-relay-secrets"}}]


# --- integrations shipped in the repository -------------------------------------------------------


def test_integration_files_parse_and_point_at_relay_endpoints() -> None:
    alertmanager = yaml.safe_load((ROOT / "integrations" / "alertmanager" / "alertmanager.yml").read_text())
    urls = [
        cfg.get("url") or cfg.get("url_file")
        for receiver in alertmanager["receivers"]
        for cfg in receiver.get("webhook_configs", [])
    ]
    assert urls
    assert any("/api/integrations/alertmanager" in str(u) for u in urls)
    zabbix = yaml.safe_load((ROOT / "integrations" / "zabbix" / "relay_media_type.yaml").read_text())
    assert "zabbix_export" in zabbix
