"""SQL injection: in `Message`, in CLI arguments and in OUTBOX_TABLE, it is only ever data."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import inspect

from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from tests.integration.faults.fault_receiver import FaultReceiver
from tests.integration.faults.fleet import Fleet, fault_env, run_cli, settle
from tests.integration.faults.invariants import assert_invariants, snapshot
from tests.integration.faults.scale import report
from tests.integration.sql_stores import migrated_store
from tests.integration.worker_harness import SECRET

pytestmark = pytest.mark.faults
INJECTIONS = [
    '\'); DROP TABLE "Messages"; --',
    "Robert'); DROP TABLE Students;--",
    "1' OR '1'='1",
    '"; UPDATE "Messages" SET "ToSend" = 0; --',
    '$$; DELETE FROM "Messages"; $$',
    "'; EXEC xp_cmdshell('dir'); --",
    "\\'; SELECT pg_sleep(30); --",
    "' UNION SELECT NULL, NULL, version() --",
    "%s %s %(ID)s :ToSend ? {0}",
]
BAD_TABLES = [
    'Messages; DROP TABLE "Messages"; --',
    'Messages"--',
    "Messages'",
    "Messages]; DROP TABLE [Messages",
    "Mess ages",
    "1Messages",
    "public.Messages",
]
COMMANDS = [["migrate"], ["worker"], ["drain"], ["status"], ["retry", "--all-dead"],
            ["enqueue", "--user-id", "1", "--message", "x"]]  # fmt: skip


def test_injection_in_messages_and_cli_arguments_is_stored_and_sent_verbatim(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    store.enqueue([NewMessage(user_id=1, body=text) for text in INJECTIONS])
    env = fault_env(database_url, "http://127.0.0.1:9/unused")
    accepted = [["--message", text] for text in INJECTIONS[:3]]
    accepted.append(["--message", "m", "--type", INJECTIONS[0]])  # an unknown type: invalid
    refused = [
        ["retry", "--id", "1 OR 1=1"],
        ["retry", "--id", '1; DROP TABLE "Messages"'],
        ["status", "--dead", '1; DROP TABLE "Messages"'],
    ]
    commands = [["enqueue", "--user-id", "2", *args] for args in accepted] + refused
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda args: run_cli(env, *args), commands))
    before = snapshot(store)

    with (
        FaultReceiver(secret=SECRET) as receiver,
        Fleet(fault_env(database_url, receiver.url), tmp_path) as fleet,
    ):
        fleet.start()
        settle(store, timeout=60)
        codes = fleet.stop_all()

    tally = assert_invariants(store, before, receiver.deliveries(), held_at_faults=0)
    report(
        f"sql-injection[{database}]: {len(INJECTIONS)} hostile messages + 3 by CLI sent "
        f"verbatim, hostile --type marked invalid, {len(refused)} hostile CLI ids refused, "
        f"{tally.figures()}"
    )
    codes_of_cli = [r.returncode for r in results]
    assert codes_of_cli == [0] * len(accepted) + [2] * len(refused), [r.stderr for r in results]
    assert (tally.rows, tally.sent, tally.invalid) == (len(INJECTIONS) + 4, len(INJECTIONS) + 3, 1)
    assert codes == [0]


def test_a_table_name_that_is_not_a_plain_identifier_is_refused_by_every_command(
    sqlite_url: str,
) -> None:
    store = migrated_store(sqlite_url)
    tables = inspect(store.engine).get_table_names()
    rows = snapshot(store)
    env = fault_env(sqlite_url, "http://127.0.0.1:9/unused")
    runs = [(name, ["worker"]) for name in BAD_TABLES] + [(BAD_TABLES[0], c) for c in COMMANDS]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda run: run_cli(env | {"OUTBOX_TABLE": run[0]}, *run[1]), runs))

    report(
        f"table-name[sqlite]: {len(BAD_TABLES)} hostile OUTBOX_TABLE values refused at start by "
        f"`worker`, one by all {len(COMMANDS)} commands; schema and rows untouched"
    )
    for (name, command), result in zip(runs, results, strict=True):
        assert result.returncode == 2, (name, command, result.stdout, result.stderr)
        assert "OUTBOX_TABLE must be a plain SQL identifier" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert inspect(store.engine).get_table_names() == tables
    assert snapshot(store) == rows
    store.close()
