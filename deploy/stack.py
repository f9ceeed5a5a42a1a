"""The deployed topology on one machine without containers: `python -m deploy.stack up|status|stop|down`.

What docker-compose.yml runs as containers runs here as processes: a real PostgreSQL (Dagster's storage and
MLflow's backend store), a real `mlflow server` proxying artifacts, the asset graph materialized by `churn run`
on that Dagster storage and that tracking server, two prediction servers behind nginx, the pipeline exporter,
Prometheus and Alertmanager. Nothing is written twice: every service's configuration is read from the files
the compose file uses (its `command`s and `environment`s, deploy/nginx/nginx.conf, deploy/prometheus/,
deploy/alertmanager/, deploy/dagster/dagster.yaml, deploy/postgres/initdb/), and only the addresses move:
each compose service's `host:port` becomes `127.0.0.1:<local port>` through one table (`Ports`), and the
image's paths (/app, /var/lib/churn) become the repository and CHURN_HOME.

State lives in $CHURN_HOME/stack (logs, pid files, Prometheus and Alertmanager data, the generated secrets),
except PostgreSQL's data directory when this runs as root: PostgreSQL refuses root, so it runs as Debian's
`postgres` user, whose data directory must be reachable by that user (CHURN_HOME is owner-only), i.e.
/var/lib/postgresql/churn-stack-<hash of CHURN_HOME>.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings, SettingsConfigDict

from benchmarks.servers import ManagedServer, group_members
from churn_assets.settings import REPO_ROOT, Settings

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DEPLOY = REPO_ROOT / "deploy"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
IMAGE_APP_DIR = "/app"  # WORKDIR of the image (Dockerfile)
IMAGE_HOME = "/var/lib/churn"  # CHURN_HOME in the image
SERVICES = ["postgres", "mlflow", "serving-1", "serving-2", "lb", "exporter", "prometheus", "alertmanager"]
"""The compose services this runs, in start order (Dagster's webserver and daemon are `make ui`'s job here)."""


class Ports(BaseSettings):
    """Local port of each compose service (CHURN_STACK_<SERVICE>_PORT); the one address mapping."""

    model_config = SettingsConfigDict(env_prefix="CHURN_STACK_")

    postgres_port: int = 15432
    mlflow_port: int = 15000
    serving_1_port: int = 18001
    serving_2_port: int = 18002
    lb_port: int = 18080
    exporter_port: int = 19108
    prometheus_port: int = 19090
    alertmanager_port: int = 19093

    def of(self, service: str) -> int:
        return int(getattr(self, f"{service.replace('-', '_')}_port"))

    def addresses(self, compose: Mapping[str, Any]) -> dict[str, str]:
        """`service:container_port` → `127.0.0.1:local_port`, for every service with a local port."""
        mapping = {}
        for service in SERVICES:
            mapping[f"{service}:{container_port(compose, service)}"] = f"127.0.0.1:{self.of(service)}"
        mapping["localhost:9090"] = f"127.0.0.1:{self.prometheus_port}"  # Prometheus scraping itself
        return mapping


CONTAINER_PORTS = {"postgres": 5432, "prometheus": 9090, "alertmanager": 9093}
"""Ports of the services that run official images (theirs, not written in the compose file)."""


def container_port(compose: Mapping[str, Any], service: str) -> int:
    if service in CONTAINER_PORTS:
        return CONTAINER_PORTS[service]
    spec = compose["services"][service]
    if "expose" in spec:
        return int(spec["expose"][0])
    return int(str(spec["ports"][0]).rsplit(":", 1)[-1])


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def remap(text: str, addresses: Mapping[str, str], home: Path) -> str:
    """The compose world's addresses and image paths, moved to this machine's."""
    for container, local in addresses.items():
        text = re.sub(rf"(?<![\w.-]){re.escape(container)}(?!\d)", local, text)
    return text.replace(f"{IMAGE_APP_DIR}/", f"{REPO_ROOT}/").replace(IMAGE_HOME, str(home))


def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """`argv` with the value after `flag` replaced (the compose command's in-container host, port or path)."""
    at = argv.index(flag) + 1
    return [*argv[:at], value, *argv[at + 1 :]]


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` with this stack's values."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in variables:
            return variables[name]
        if op == ":-":
            return rest
        raise KeyError(f"docker-compose.yml needs {name} ({rest or 'no default'})")

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", one, value)


class Stack:
    def __init__(self, settings: Settings, ports: Ports) -> None:
        self.settings, self.ports = settings, ports
        self.dir = settings.home / "stack"
        self.compose = load_compose()
        self.addresses = ports.addresses(self.compose)

    # --- secrets and environments -------------------------------------------------------------------------
    def secrets(self) -> dict[str, str]:
        """The `.env` of this stack: .env.example's variables with generated values (kept, owner-only)."""
        path = self.dir / "secrets.env"
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            names = [
                line.split("=", 1)[0].lstrip("# ").strip()
                for line in (REPO_ROOT / ".env.example").read_text().splitlines()
                if re.match(r"^#?\s*[A-Z_]+=", line)
            ]
            values = {name: secrets.token_urlsafe(16) for name in names}
            values["POSTGRES_USER"] = "churn"
            values.pop("CHURN_IMAGE_TAG", None)
            values.pop("BASE_IMAGE", None)
            path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
            path.chmod(0o600)
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)

    def environment(self, service: str) -> dict[str, str]:
        """The compose service's environment, interpolated and remapped, over this process's environment."""
        variables = self.secrets()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MLFLOW_"))}
        for key, value in (self.compose["services"][service].get("environment") or {}).items():
            env[key] = remap(interpolate(str(value), variables), self.addresses, self.settings.home)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if "DAGSTER_PG_HOST" in env:  # a bare host name and port, not a host:port pair
            env["DAGSTER_PG_HOST"], env["DAGSTER_PG_PORT"] = "127.0.0.1", str(self.ports.postgres_port)
        return env

    def command(self, service: str) -> list[str]:
        command = self.compose["services"][service]["command"]
        words = command.split() if isinstance(command, str) else list(command)
        return [remap(word, self.addresses, self.settings.home) for word in words]

    # --- process bookkeeping ------------------------------------------------------------------------------
    def pid_file(self, service: str) -> Path:
        return self.dir / f"{service}.pid"

    def running(self, service: str) -> bool:
        path = self.pid_file(service)
        return path.exists() and bool(group_members(int(path.read_text())))

    def start(self, service: str, argv: list[str], env: dict[str, str], ready_path: str, port: int) -> None:
        if self.running(service):
            print(f"{service}: already running")
            return
        server = ManagedServer(service, argv, env, port, ready_path, self.dir / f"{service}.log", REPO_ROOT)
        server.start()
        if server.proc is None:
            raise RuntimeError(f"{service} did not start")
        self.pid_file(service).write_text(str(server.proc.pid))
        server.wait_ready(timeout=600)
        print(f"{service}: ready at http://127.0.0.1:{port} ({server.startup_s:.1f} s)")

    def stop(self, service: str, grace: float = 15.0) -> None:
        if service == "postgres":
            return self._pg_stop()
        path = self.pid_file(service)
        if not path.exists():
            return
        pgid = int(path.read_text())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + grace
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not group_members(pgid):
                break
        path.unlink()
        print(f"{service}: stopped")

    # --- PostgreSQL -------------------------------------------------------------------------------------
    @property
    def pg_data(self) -> Path:
        if os.geteuid() != 0:
            return self.dir / "postgres"
        tag = hashlib.sha256(str(self.settings.home).encode()).hexdigest()[:12]
        return Path("/var/lib/postgresql") / f"churn-stack-{tag}"

    @property
    def pg_log(self) -> Path:
        """PostgreSQL's server log, beside its data directory (written by the `postgres` user)."""
        return self.pg_data.parent / f"{self.pg_data.name}.log"

    def _pg(self, *argv: str, check: bool = True) -> int:
        runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*runner, *argv], check=check, stdout=subprocess.DEVNULL)  # nosec B603 # Debian's PostgreSQL binaries, fixed arguments
        return done.returncode

    def _pg_running(self) -> bool:
        """A live server on the data directory (`pg_ctl status`: a postmaster.pid left by a crash is not one)."""
        if not (self.pg_data / "PG_VERSION").exists():
            return False
        return self._pg(str(PG_BIN / "pg_ctl"), "status", "-D", str(self.pg_data), check=False) == 0

    def _pg_stop(self) -> None:
        if self._pg_running():
            self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.pg_data), "-m", "fast", "-w", "stop")
            print("postgres: stopped")

    def _pg_start(self) -> None:
        values = self.secrets()
        data = self.pg_data
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            password = data.parent / f"{data.name}.pw"
            password.write_text(values["POSTGRES_PASSWORD"])
            if os.geteuid() == 0:
                shutil.chown(data, "postgres", "postgres")
                shutil.chown(password, "postgres", "postgres")
            password.chmod(0o600)
            try:
                self._pg(
                    str(PG_BIN / "initdb"), "-D", str(data), "-U", values["POSTGRES_USER"],
                    f"--pwfile={password}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C",
                )  # fmt: skip
            finally:
                password.unlink()
        if not self._pg_running():  # PostgreSQL itself replaces a stale postmaster.pid
            log = self.pg_log
            options = f"-p {self.ports.postgres_port} -h 127.0.0.1 -c unix_socket_directories=''"
            self._pg(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        self._create_databases(values)
        print(f"postgres: ready at 127.0.0.1:{self.ports.postgres_port}")

    def _create_databases(self, values: Mapping[str, str]) -> None:
        """The compose `postgres` service's POSTGRES_DB, then its init scripts (deploy/postgres/initdb/)."""
        import psycopg2

        spec = self.compose["services"]["postgres"]
        volume = next(v for v in spec["volumes"] if v.endswith("/docker-entrypoint-initdb.d:ro"))
        scripts = sorted((REPO_ROOT / volume.split(":")[0]).glob("*.sql"))
        connection = psycopg2.connect(
            host="127.0.0.1",
            port=self.ports.postgres_port,
            user=values["POSTGRES_USER"],
            password=values["POSTGRES_PASSWORD"],
            dbname="postgres",
        )
        connection.autocommit = True  # CREATE DATABASE runs outside a transaction (so no `with connection`)
        with connection.cursor() as cursor:
            cursor.execute("select datname from pg_database")
            existing = {name for (name,) in cursor.fetchall()}
            if spec["environment"]["POSTGRES_DB"] not in existing:
                cursor.execute(f'create database "{spec["environment"]["POSTGRES_DB"]}"')
            for script in scripts:
                sql = re.sub(r"--[^\n]*", "", script.read_text())
                for statement in filter(str.strip, sql.split(";")):
                    created = re.search(r"create\s+database\s+(\w+)", statement, re.IGNORECASE)
                    if created is None or created.group(1) not in existing:
                        cursor.execute(statement)
        connection.close()

    # --- the services -------------------------------------------------------------------------------------
    def _nginx_conf(self) -> Path:
        text = remap((DEPLOY / "nginx" / "nginx.conf").read_text(), self.addresses, self.settings.home)
        text = re.sub(r"\blisten\s+(\d+);", f"listen 127.0.0.1:{self.ports.lb_port};", text)
        text = text.replace("/tmp/", f"{self.dir}/")  # nosec B108 # moves the container's /tmp paths into the stack dir
        if os.geteuid() == 0:  # workers would drop to `nobody`, who cannot reach CHURN_HOME
            text = "user root;\n" + text
        path = self.dir / "nginx.conf"
        path.write_text(text)
        return path

    def prometheus_config(self) -> dict[str, Any]:
        """deploy/prometheus/prometheus.yml with the local addresses and the repository's rule files."""
        text = remap(
            (DEPLOY / "prometheus" / "prometheus.yml").read_text(), self.addresses, self.settings.home
        )
        config = yaml.safe_load(text)
        config["rule_files"] = [str(DEPLOY / "prometheus" / rule) for rule in config.get("rule_files", [])]
        return config

    def up(self) -> None:
        self.settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.mkdir(exist_ok=True)
        self._pg_start()
        mlflow = self.command("mlflow")
        mlflow = with_option(mlflow, "--artifacts-destination", str(self.dir / "mlflow-artifacts"))
        mlflow = with_option(
            with_option(mlflow, "--host", "127.0.0.1"), "--port", str(self.ports.mlflow_port)
        )
        self.start("mlflow", mlflow, self.environment("mlflow"), "/health", self.ports.mlflow_port)

        pipeline_env = self.environment("dagster-code")
        if not (self.dir / "materialized").exists():
            print("churn run: materializing the asset graph (Dagster storage in Postgres, MLflow over HTTP)")
            with open(self.dir / "churn-run.log", "wb") as log:
                done = subprocess.run(  # nosec B603 # the project's own CLI
                    [sys.executable, "-m", "churn_assets.cli", "run"],
                    env=pipeline_env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, check=False,
                )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"churn run failed: see {self.dir / 'churn-run.log'}")
            (self.dir / "materialized").touch()

        for replica in ("serving-1", "serving-2"):
            env = self.environment(replica)
            env["CHURN_SERVE_HOST"], env["CHURN_SERVE_PORT"] = "127.0.0.1", str(self.ports.of(replica))
            self.start(
                replica, [sys.executable, *self.command(replica)[1:]], env, "/health", self.ports.of(replica)
            )
        nginx = ["nginx", "-c", str(self._nginx_conf()), "-p", str(self.dir), "-g", "daemon off;"]
        self.start("lb", nginx, dict(os.environ), "/health", self.ports.lb_port)

        exporter = with_option(self.command("exporter"), "--host", "127.0.0.1")
        exporter = with_option(exporter, "--port", str(self.ports.exporter_port))
        self.start("exporter", exporter, self.environment("exporter"), "/metrics", self.ports.exporter_port)

        alertmanager = [
            "prometheus-alertmanager",
            f"--config.file={DEPLOY / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={self.dir / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{self.ports.alertmanager_port}",
            "--cluster.listen-address=",
        ]
        self.start("alertmanager", alertmanager, dict(os.environ), "/-/ready", self.ports.alertmanager_port)

        config = self.dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        prometheus = [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={self.dir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{self.ports.prometheus_port}",
        ]
        self.start("prometheus", prometheus, dict(os.environ), "/-/ready", self.ports.prometheus_port)
        self.status()

    def status(self) -> None:
        for service in SERVICES:
            state = (
                "running"
                if (self.running(service) if service != "postgres" else self._pg_running())
                else "stopped"
            )
            print(f"{service:<13} {state:<8} 127.0.0.1:{self.ports.of(service)}")

    def down(self) -> None:
        for service in reversed(SERVICES):
            self.stop(service)


def iter_services(names: list[str]) -> Iterator[str]:
    for name in names:
        if name not in SERVICES:
            raise SystemExit(f"unknown service {name!r}: one of {', '.join(SERVICES)}")
        yield name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start every service (materializing the graph the first time)")
    commands.add_parser("status", help="what runs, where")
    stop = commands.add_parser("stop", help="stop some services (e.g. a replica, to see ReplicaDown fire)")
    stop.add_argument("services", nargs="+")
    commands.add_parser("down", help="stop everything (state is kept in $CHURN_HOME/stack)")
    args = parser.parse_args(argv)
    stack = Stack(Settings(), Ports())
    if args.command == "up":
        stack.up()
    elif args.command == "status":
        stack.status()
    elif args.command == "stop":
        for service in iter_services(args.services):
            stack.stop(service)
    else:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
