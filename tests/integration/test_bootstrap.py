"""scripts/bootstrap against fake root directories, in dry-run mode: what it would install.

The real install path (apt-get on a machine without the packages) cannot run here without
removing packages other runs use; the dry run prints the exact command it would run.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = [
    "usr/lib/x86_64-linux-gnu/libodbc.so.2",
    "usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so",
    "usr/lib/postgresql/15/bin/initdb",
    "usr/bin/chromium",
    "usr/bin/chromedriver",
    "usr/bin/zstd",
    "usr/bin/tsql",
    "usr/sbin/nginx",
]


def fake_root(tmp_path: Path, files: list[str]) -> Path:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    (tmp_path / "etc").mkdir(exist_ok=True)
    if any(name.endswith("libtdsodbc.so") for name in files):
        (tmp_path / "etc/odbcinst.ini").write_text("[FreeTDS]\nDriver=libtdsodbc.so\n")
    return tmp_path


def bootstrap(
    target: str, root: Path, *, as_user: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    clean.update(OUTBOX_BOOTSTRAP_ROOT=str(root), OUTBOX_BOOTSTRAP_DRY_RUN="1", **env)
    clean.setdefault("OUTBOX_BABELFISH_START", str(root / "no-babelfish"))
    command = ["bash", str(ROOT / "scripts/bootstrap"), target]
    if as_user:
        user = pwd.getpwnam(as_user)
        ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        command = ["setpriv", *ids, *command]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=30)


def would_install(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.count("\n") == 0 and "apt-get install -y --no-install-recommends" in line, line
    return line.split("--no-install-recommends ")[1].split()


def test_on_a_bare_machine_make_test_installs_odbc_postgresql_and_chromium(tmp_path: Path) -> None:
    done = bootstrap("test", fake_root(tmp_path, []))

    assert would_install(done) == [
        "unixodbc",
        "tdsodbc",
        "postgresql",
        "chromium",
        "chromium-driver",
    ]


def test_with_the_babelfish_stand_in_present_it_also_installs_zstd_and_the_freetds_tools(
    tmp_path: Path,
) -> None:
    start = tmp_path / "shared/babelfish/start"
    start.parent.mkdir(parents=True)
    start.touch()
    root = fake_root(tmp_path / "root", EVERYTHING[:5])

    done = bootstrap("test", root, OUTBOX_BABELFISH_START=str(start))

    assert would_install(done) == ["zstd", "freetds-bin"]


def test_a_configured_postgresql_needs_no_server_binaries(tmp_path: Path) -> None:
    root = fake_root(tmp_path, [f for f in EVERYTHING if "postgresql" not in f])

    done = bootstrap("test", root, OUTBOX_TEST_PG_URL="postgresql+psycopg://u@db/x")

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_only_the_benchmarks_install_nginx(tmp_path: Path) -> None:
    root = fake_root(tmp_path, [f for f in EVERYTHING if "nginx" not in f])

    assert bootstrap("test", root).stdout == ""
    assert would_install(bootstrap("bench", root)) == ["nginx-light"]


def test_with_everything_installed_it_prints_nothing(tmp_path: Path) -> None:
    done = bootstrap("test", fake_root(tmp_path, EVERYTHING))

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("sudo") is not None,
    reason="needs root to run the script as another user without sudo",
)
def test_without_root_or_sudo_it_stops_with_the_command_to_run(tmp_path: Path) -> None:
    done = bootstrap("test", fake_root(tmp_path, []), as_user="nobody")

    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == (
        "bootstrap: missing system packages; run: sudo apt-get install -y"
        " --no-install-recommends unixodbc tdsodbc postgresql chromium chromium-driver"
    )
