"""Secrets stay secret; private targets are refused unless allowed; TLS is always verified."""

from __future__ import annotations

import re
import ssl
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import httpx
import pytest
from sqlalchemy import make_url, select

from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from entrypoints.config import Settings
from tests.integration.faults.fault_receiver import FaultReceiver, Faults
from tests.integration.faults.fleet import Fleet, fault_env, run_cli, settle
from tests.integration.faults.invariants import assert_invariants, snapshot
from tests.integration.faults.scale import report
from tests.integration.http_servers import closed_port
from tests.integration.worker_harness import SECRET

pytestmark = pytest.mark.faults
OLD_SECRET = "whsec_b2xkLXNlY3JldC1zdGlsbC1hY2NlcHRlZC1kdXJpbmctcm90YXRpb24="
PASSWORD = "pw-Zq7-never-logged"
SRC = Path(__file__).resolve().parents[3] / "src"
PRIVATE = [
    "http://127.0.0.1:{port}/hooks",
    "http://localhost:{port}/",
    "http://127.1:{port}/",
    "http://2130706433:{port}/",  # 127.0.0.1 as one decimal number
    "http://0x7f000001:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://10.1.2.3/",
    "http://172.16.5.4/",
    "http://192.168.0.10/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
]
# Names an operator might try to switch TLS verification off with; none may work.
TLS_OFF = {
    "OUTBOX_TLS_VERIFY": "false",
    "OUTBOX_VERIFY_TLS": "false",
    "OUTBOX_SSL_VERIFY": "0",
    "OUTBOX_HTTP_VERIFY": "false",
    "OUTBOX_VERIFY": "false",
    "OUTBOX_INSECURE": "true",
    "OUTBOX_INSECURE_SKIP_VERIFY": "true",
    "OUTBOX_TLS_INSECURE": "1",
    "OUTBOX_CA_BUNDLE": "",
    "PYTHONHTTPSVERIFY": "0",
    "CURL_CA_BUNDLE": "",
    "REQUESTS_CA_BUNDLE": "",
}


def test_the_signing_secret_and_password_appear_in_no_log_status_history_or_metric(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    store.enqueue([NewMessage(user_id=1, body=f"secret test {i}") for i in range(300)])
    before = snapshot(store)
    url = with_password(database_url)
    port = closed_port()
    malformed = {"OUTBOX_SIGNING_SECRET": f"{SECRET}!{PASSWORD}"}
    bad_secret = run_cli(fault_env(url, "http://127.0.0.1:9/") | malformed, "worker")
    echo = Faults(error_500=0.2, error_503=0.1, too_many=0.1)  # their excerpts land in Status

    with FaultReceiver(secret=SECRET, faults=echo) as receiver:
        # 40 % of answers fail, so a few half-open probes failing in a row would double the
        # breaker's cool-down to a minute (seen: settle ran past 180 s); this test is about
        # secrets, not the breaker, so its cool-down stays at 5 s
        env = fault_env(
            url, receiver.url, OUTBOX_METRICS_PORT=str(port), OUTBOX_BREAKER_COOLDOWN_MAX="5"
        )
        env["OUTBOX_SIGNING_SECRET"] = f"{SECRET} {OLD_SECRET}"  # rotating: both sign
        with Fleet(env, tmp_path) as fleet:
            fleet.start()
            fleet.start(OUTBOX_LOG_FORMAT="json", OUTBOX_METRICS_PORT="0")
            # 429s with Retry-After pause the whole target (a second each): slower than per row
            settle(store, timeout=180)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            status = run_cli(env, "status", "--json", "--dead", "1000")
            codes = fleet.stop_all()

    tally = assert_invariants(store, before, receiver.deliveries(), held_at_faults=0)
    places = {
        "worker logs": fleet.logs(),
        "bad secret error": bad_secret.stdout + bad_secret.stderr,
        "outbox rows": " ".join(str(v) for v in column_values(store, store.table)),
        "attempt history": " ".join(str(v) for v in column_values(store, store.history)),
        "/metrics": metrics,
        "outbox status": status.stdout + status.stderr,
    }
    secrets = [SECRET, OLD_SECRET, SECRET.removeprefix("whsec_"), PASSWORD]
    leaks = [(s, where) for s in secrets for where, text in places.items() if s in text]
    report(
        f"secrets[{database}]: 2 signing secrets, 2 workers (text and JSON logs), "
        f"{len(places)} places searched, {len(leaks)} leaks, {tally.figures()}"
    )
    assert leaks == []
    assert bad_secret.returncode == 2 and "OUTBOX_SIGNING_SECRET" in bad_secret.stderr
    assert "outbox_messages_total" in metrics and status.returncode == 0
    assert codes == [0, 0]


def test_a_private_target_is_refused_at_start_unless_allowed(
    sqlite_store: SqlOutboxStore, sqlite_url: str, tmp_path: Path
) -> None:
    store = sqlite_store
    store.enqueue([NewMessage(user_id=1, body="must not leave")])
    before = snapshot(store)
    port = closed_port()
    env = fault_env(sqlite_url, "")
    env.pop("OUTBOX_ALLOW_PRIVATE_TARGETS")
    cases = [env | {"OUTBOX_TARGET_URL": target.format(port=port)} for target in PRIVATE]
    cases.append(cases[0] | {"OUTBOX_ALLOW_PRIVATE_TARGETS": "false"})
    public_default_private_type = {
        "OUTBOX_TARGET_URL": "http://93.184.216.34/",
        "OUTBOX_TARGET_URLS": "json=http://10.0.0.1/x",
    }
    cases.append(env | public_default_private_type)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: run_cli(case, "worker", timeout=30), cases))
    with FaultReceiver(secret=SECRET) as receiver:
        allowed = fault_env(sqlite_url, receiver.url)  # OUTBOX_ALLOW_PRIVATE_TARGETS=true
        with Fleet(allowed, tmp_path) as fleet:
            fleet.start()
            settle(store, timeout=30)
            codes = fleet.stop_all()

    report(
        f"private-targets[sqlite]: {len(cases)} private targets (loopback, RFC 1918, link-local "
        f"metadata, CGNAT, IPv6, numeric forms) refused with exit 2; allowed only when enabled"
    )
    for case, result in zip(cases, results, strict=True):
        assert result.returncode == 2, (case["OUTBOX_TARGET_URL"], result.stderr)
        assert "not a public address" in result.stderr, result.stderr
    assert_invariants(store, before, receiver.deliveries(), held_at_faults=0)
    assert codes == [0] and len(receiver.deliveries()) == 1


@pytest.mark.parametrize("engine", ["reqwest", "aiohttp", "httpx"])
def test_tls_verification_cannot_be_switched_off_by_any_setting(
    sqlite_store: SqlOutboxStore, sqlite_url: str, tmp_path: Path, engine: str
) -> None:
    store = sqlite_store
    store.enqueue([NewMessage(user_id=1, body=f"tls {i}") for i in range(5)])
    before = snapshot(store)
    cert, key = self_signed_certificate(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)

    with FaultReceiver(secret=SECRET, ssl_context=server) as receiver:
        control = httpx.get(receiver.url, verify=ssl.create_default_context(cafile=str(cert)))
        # the breaker stays out of it: each row spends its two attempts on the TLS handshake
        env = fault_env(
            sqlite_url, receiver.url, OUTBOX_MAX_ATTEMPTS="2", OUTBOX_BREAKER_FAILURES="1000"
        )
        env |= TLS_OFF
        env["OUTBOX_HTTP_ENGINE"] = engine
        with Fleet(env, tmp_path) as fleet:
            fleet.start()
            settle(store, timeout=30)
            codes = fleet.stop_all()

    tally = assert_invariants(store, before, receiver.deliveries(), held_at_faults=0)
    report(
        f"tls[{engine}]: self-signed HTTPS receiver, {len(TLS_OFF)} variables set to switch "
        f"verification off, {len(receiver.deliveries())} POSTs got through, {tally.figures()}"
    )
    assert control.status_code == 405  # the server speaks TLS fine to a client that trusts it
    assert receiver.deliveries() == [] and tally.dead == 5
    assert codes == [0]
    assert tls_switches_in_settings() == [] and tls_switches_in_source() == []


def tls_switches_in_settings() -> list[str]:
    pattern = re.compile(r"verify|tls|ssl|insecure|cert", re.IGNORECASE)
    return [f.name for f in attrs.fields(Settings) if pattern.search(f.name)]


def tls_switches_in_source() -> list[str]:
    """Code that could turn verification off: none may exist under src/."""
    pattern = re.compile(
        r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|ssl\s*=\s*False"
        r"|danger_accept_invalid|add_root_certificate"
    )
    return [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def with_password(database_url: str) -> str:
    """PostgreSQL URLs get a password (trust authentication ignores it); SQLite has none."""
    if not database_url.startswith("postgresql"):
        return database_url
    return make_url(database_url).set(password=PASSWORD).render_as_string(hide_password=False)


def column_values(store: SqlOutboxStore, table: object) -> list[object]:
    with store.engine.connect() as conn:
        return [value for row in conn.execute(select(table)) for value in row]  # type: ignore[call-overload]
