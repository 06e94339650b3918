"""A throwaway nginx on 127.0.0.1 answering 204 to any POST: a receiver faster than any sender."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

NGINX = "/usr/sbin/nginx"

# arrival time (ms resolution), path and key of each POST: what bench.receiver_log parses
_KEY_LOG = (
    "log_format keys '$msec $uri $http_idempotency_key';\n"
    "    access_log {path} keys buffer=256k flush=100ms;"
)

_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {access_log}
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_buffer_size 64k;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{ return 204; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def nginx_receiver(nginx: str = NGINX, key_log: Path | None = None) -> Iterator[str]:
    """Run nginx in the foreground for the block; yields its base URL (http://127.0.0.1:PORT).

    With `key_log`, every request appends `<epoch seconds.ms> <path> <Idempotency-Key>` there.
    """
    if shutil.which(nginx) is None:
        raise RuntimeError(f"nginx not found at {nginx}")
    with tempfile.TemporaryDirectory(prefix="outbox-nginx-") as root:
        port = free_port()
        config = Path(root, "nginx.conf")
        access_log = _KEY_LOG.format(path=key_log) if key_log else "access_log off;"
        config.write_text(_CONFIG.format(root=root, port=port, access_log=access_log))
        process = subprocess.Popen(
            [nginx, "-p", root, "-e", f"{root}/error.log", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_until_listening(process, port)
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(process)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"nginx exited with {process.returncode}: {error.strip()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    _stop(process)
    raise RuntimeError(f"nginx did not listen on 127.0.0.1:{port} within {timeout:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr:
        process.stderr.close()
