"""Throwaway servers for tests and benchmarks: a PostgreSQL cluster and a redis-server, from
the Debian packages, in temp dirs, stopped (and removed) when the context ends."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Postgres:
    """A running throwaway cluster: unix socket in ``host``, trust auth for ``user``."""

    bin: Path
    host: str
    port: int
    user: str = "codedpo"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its DuckLake catalog string."""
        subprocess.run([str(self.bin / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", "postgres", "-q", "-c",
                        f'CREATE DATABASE "{name}"'], check=True, capture_output=True)  # fmt: skip
        return f"postgres:dbname={name} host={self.host} port={self.port} user={self.user}"

    def sqlalchemy_url(self, database: str) -> str:
        """For the Dagster instance on PostgreSQL (dagster-postgres ``postgres_url``)."""
        return f"postgresql+psycopg2://{self.user}@/{database}?host={self.host}&port={self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb + pg_ctl in a temp dir, as an unprivileged user (PostgreSQL refuses root), listening
    on a unix socket only. Raises FileNotFoundError when PostgreSQL is not installed."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (Debian package 'postgresql')")
    root = Path(tempfile.mkdtemp(prefix="codedpo-pg-"))
    run_as: dict = {}
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = pwd.getpwnam("nobody")
        os.chown(root, account.pw_uid, account.pw_gid)
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    port = free_port()  # names the socket file
    data, log = root / "data", root / "server.log"
    subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "codedpo", "--no-sync", "-E", "UTF8"],
                   check=True, capture_output=True, cwd=root, **run_as)  # fmt: skip
    options = f"-k {root} -p {port} -c listen_addresses='' -F"
    subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"], check=True, capture_output=True,
                   cwd=root, **run_as)  # fmt: skip
    try:
        yield Postgres(bin_dir, str(root), port)
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            cwd=root,
            check=False,
            **run_as,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """redis-server on 127.0.0.1, no persistence; yields its URL. Raises FileNotFoundError when
    redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (Debian package 'redis-server')")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
