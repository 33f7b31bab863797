"""A throwaway PostgreSQL server in a folder: for the tests and the EC-CUBE demo, never for a shop's data.

`initdb` into `<root>/data`, `postgres` listening on a Unix socket in `<root>` only (no TCP port), password
authentication (scram-sha-256) for every role, fsync off (nothing here needs to survive a crash). It runs
Debian's server binaries (`/usr/lib/postgresql/<version>/bin`, the package `postgresql`) or whatever
`pg_config --bindir` / PATH offers. PostgreSQL refuses to run as root: as root the server runs as the
`postgres` system user the package creates, and the folder is handed to it.

    with ThrowawayPostgres() as pg:
        pg.create_database("eccube", owner="eccube", password="...")
        url = pg.url("eccube", "...", "eccube")   # postgresql+psycopg://eccube:...@/eccube?host=<socket dir>
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from kizuna.errors import KizunaError

SUPERUSER = "postgres"


def find_bin_dir() -> Path:
    """The folder of `initdb`, `pg_ctl` and `postgres`: Debian's newest version first."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                    key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/")[4])])
    if debian:
        return Path(debian[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise KizunaError("PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found: install Debian's "
                      "`postgresql` package (`apt-get install postgresql`; .ci/run does it when they are missing).")


class ThrowawayPostgres:
    """A PostgreSQL cluster in a new folder, started on a Unix socket there; `stop()` ends it, `remove()` deletes it.

    The folder is made in `parent` (default: the system's temporary folder). Run as root, `parent` and the
    folders above it must be open to the `postgres` user: the system's temporary folder is, pytest's are not.
    """

    def __init__(self, parent: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kizuna-pg-", dir=parent))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.bin = find_bin_dir()
        self.superuser_password = secrets.token_urlsafe(18)
        self._run_as = None
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise KizunaError("running as root, PostgreSQL needs the `postgres` system user (Debian's "
                                  "`postgresql` package creates it): install the package, or run as another user.") from None
        self.running = False

    # -- life --------------------------------------------------------------------------------

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        kwargs = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid} if self._run_as else {}
        done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=self.root, **kwargs)
        if done.returncode != 0:
            raise KizunaError(f"{Path(args[0]).name} failed ({done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()[-2000:]}")
        return done

    def start(self) -> "ThrowawayPostgres":
        pwfile = self.root / "superuser.pw"
        pwfile.write_text(self.superuser_password + "\n")
        if self._run_as:
            for path in (self.root, pwfile):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        self._run(self.bin / "initdb", "-D", self.data, "-U", SUPERUSER, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        pwfile.unlink()
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=40")
        self._run(self.bin / "pg_ctl", "start", "-D", self.data, "-w", "-t", "60", "-l", self.root / "server.log",
                  "-o", options)
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self._run(self.bin / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", "-t", "60")
            self.running = False

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "ThrowawayPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()

    # -- roles, databases, URLs --------------------------------------------------------------

    def url(self, user: str, password: str, database: str, driver: str = "postgresql+psycopg") -> str:
        """A URL reaching the cluster through its socket (`host` is the socket folder)."""
        return (f"{driver}://{quote(user, safe='')}:{quote(password, safe='')}@/{quote(database, safe='')}"
                f"?host={quote(str(self.socket_dir), safe='/')}")

    def connect(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None,
                autocommit: bool = True):
        """A psycopg connection (the superuser's by default)."""
        import psycopg

        return psycopg.connect(host=str(self.socket_dir), dbname=database, user=user,
                               password=password or self.superuser_password, autocommit=autocommit)

    def execute(self, sql: str, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> None:
        """Run SQL (several statements allowed), as the superuser unless `user` and `password` are given."""
        with self.connect(database, user, password) as con:
            con.execute(sql)

    def create_database(self, name: str, owner: str, password: str) -> None:
        """A database owned by a new login role `owner` (the shop application's user)."""
        with self.connect() as con:
            con.execute(f'create role "{owner}" login password {_literal(password)}')
            con.execute(f'create database "{name}" owner "{owner}"')

    def create_reader(self, database: str, role: str, password: str) -> None:
        """A login role that may only read the tables of `database`'s public schema (kizuna's user)."""
        with self.connect(database) as con:
            con.execute(f'create role "{role}" login password {_literal(password)}')
            con.execute(f'grant connect on database "{database}" to "{role}"')
            con.execute(f'grant usage on schema public to "{role}"')
            con.execute(f'grant select on all tables in schema public to "{role}"')


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
