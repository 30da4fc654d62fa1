"""A real PostgreSQL server for the tests, started from the Debian package's binaries (postgresql-15).

The cluster lives in a fresh temporary folder, listens on 127.0.0.1 on a free port (and a socket inside the
folder), trusts local connections, and is stopped and removed at the end. PostgreSQL refuses to run as root: when
the tests run as root (CI), initdb and the server run as the `postgres` system user through `runuser`. Tests that
need it are skipped only when the binaries are absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("POSTGRES_BIN_DIR", "/usr/lib/postgresql/15/bin"))
DATABASE = "dagster"
USER = "dagster"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    database: str
    user: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def available() -> bool:
    return all((PG_BIN / name).exists() for name in ("initdb", "pg_ctl", "postgres"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start(folder: Path) -> tuple[PostgresServer, callable]:
    """initdb + pg_ctl start in `folder` (which must be reachable by the server's user); returns the server and a
    function that stops it."""
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        os.chmod(folder, 0o700)
    subprocess.run(_as_server_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", USER, "-A", "trust",
                                    "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True, timeout=120)
    port = _free_port()
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} "
               "-c fsync=off -c max_connections=100")
    subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                    str(folder / "server.log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True, timeout=120)

    def stop():
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)

    server = PostgresServer("127.0.0.1", port, DATABASE, USER)
    deadline = time.monotonic() + 30
    while True:
        created = subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER,
                                  DATABASE], capture_output=True, text=True, timeout=30)
        if created.returncode == 0:
            return server, stop
        if time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"PostgreSQL did not accept connections: {created.stderr}")
        time.sleep(0.2)


def new_folder() -> Path:
    # not under pytest's tmp_path: that is private to root (0700), and the server runs as `postgres`
    return Path(tempfile.mkdtemp(prefix="billing-pg-"))


def create_database(server: PostgresServer, name: str) -> PostgresServer:
    """A new empty database on the server (one per test: each gets a fresh Dagster instance)."""
    subprocess.run([str(PG_BIN / "createdb"), "-h", server.host, "-p", str(server.port), "-U", server.user, name],
                   check=True, capture_output=True, timeout=30)
    return PostgresServer(server.host, server.port, name, server.user)


def instance_environment(server: PostgresServer) -> dict[str, str]:
    """The variables dagster_home/postgres/dagster.yaml reads (trust authentication: no password)."""
    return {"DAGSTER_PG_HOST": server.host, "DAGSTER_PG_PORT": str(server.port), "DAGSTER_PG_DB": server.database,
            "DAGSTER_PG_USERNAME": server.user, "DAGSTER_PG_PASSWORD": ""}
