"""Bad input: NULL, empty, 10 MB, odd-character and not-UTF-8 `Message`, NULL or negative
`UserID`, unknown types, and a hypothesis-generated stream of arbitrary rows. Every bad row
ends `invalid:` with its reason, good rows go out intact, the worker never stops."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Unicode,
    UnicodeText,
    insert,
    select,
    text,
)

from adapters.sql.engine import make_engine
from adapters.sql.migrate import migrate
from adapters.sql.schema import ID_TYPE
from adapters.sql.store import SqlOutboxStore
from tests.integration.faults.conftest import lenient_text
from tests.integration.faults.fault_receiver import FaultReceiver
from tests.integration.faults.fleet import Fleet, fault_env, settle
from tests.integration.faults.invariants import (
    Snapshot,
    assert_invariants,
    snapshot,
    upstream,
)
from tests.integration.faults.scale import report, scaled
from tests.integration.worker_harness import SECRET, WorkerProcess

pytestmark = pytest.mark.faults
LIMIT = 256 * 1024  # characters a default or json Message may hold
Verdict = str | None  # None: a good row; else a fragment of its `invalid:` reason

# (UserID, Message, MessageType, verdict): rows any database can store
KNOWN_ROWS: list[tuple[int | None, str | None, str, Verdict]] = [
    (1, None, "default", "Message is NULL"),
    (1, "", "default", "Message is empty"),
    (1, " \t\r\n\x0b\x0c\x1c ", "default", "Message is empty"),
    (1, "x" * 10_000_000, "default", "Message is too long: 10000000 characters"),
    (None, "no recipient", "default", "UserID is NULL"),
    (-5, "negative recipient", "default", "UserID must be positive, got -5"),
    (0, "zero recipient", "default", "UserID must be positive, got 0"),
    (1, "who knows", "no-such-type", "unknown message type 'no-such-type'"),
    (1, "not json {", "json", "Message is not JSON"),
    (1, "[1, 2]", "json", "Message must be a JSON object, got list"),
    (1, '{"a": NaN}', "json", "not JSON-serialisable"),
    (1, "[" * 100_000 + "]" * 100_000, "json", "RecursionError"),
    (1, "bell\x07 escape\x1b[31m del\x7f c1\x85 tab\t end", "default", None),
    (1, "lines\u2028\u2029 rtl\u202e zero\u200b width, bom\ufeff", "default", None),
    (1, "noncharacters \ufffe\uffff\U0010ffff", "default", None),
    (1, "an escaped lone surrogate as text: \\ud800 \\udfff", "default", None),
    (1, "emoji 😀👍🏽 combining e\u0301 and 漢字", "default", None),
    (1, "y" * LIMIT, "default", None),
    (2_147_483_647, '{"deep": {"er": [1, "two", null, true]}}', "json", None),
]
# SQLite stores whatever bytes it is given: text that is not UTF-8 must be invalid, not fatal.
NOT_UTF8 = ["EDA080", "EDBFBF", "C0AF", "FF", "80", "F4908080", "41EDA08042"]


@pytest.fixture
def seed_store(database_url: str) -> Iterator[SqlOutboxStore]:
    """A seed table whose UserID is nullable (as some adopted tables are), then `migrate`."""
    engine = make_engine(database_url)
    metadata = MetaData()
    Table(
        "Messages",
        metadata,
        Column("ID", ID_TYPE, primary_key=True, autoincrement=True),
        Column("UserID", Integer, nullable=True),
        Column("Message", UnicodeText),
        Column("ToSend", SmallInteger, nullable=False, server_default=text("0")),
        Column("Status", Unicode(400)),
    )
    metadata.create_all(engine)
    migrate(engine, "Messages")
    store = SqlOutboxStore(engine, "Messages")
    lenient_text(store)
    yield store
    store.close()


def test_bad_rows_are_marked_invalid_with_their_reason_and_good_rows_go_out(
    seed_store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    store, no_nul = seed_store, database == "postgresql"  # PostgreSQL text cannot hold NUL
    rows = KNOWN_ROWS + ([] if no_nul else [(1, "nul\x00inside", "default", None)])
    expected = insert_rows(store, [(u, m, t) for u, m, t, _ in rows])
    verdicts = dict(zip(expected, [v for *_, v in rows], strict=True))
    examples = scaled(15, 150)

    with (
        FaultReceiver(secret=SECRET) as receiver,
        Fleet(fault_env(database_url, receiver.url), tmp_path) as fleet,
    ):
        worker = fleet.start()
        settle(store, timeout=60)
        assert_verdicts(store, verdicts, worker)
        generated = run_generated_batches(store, worker, examples, no_nul)
        expected.update(generated)
        codes = fleet.stop_all()

    tally = assert_invariants(store, expected, receiver.deliveries(), held_at_faults=0)
    report(
        f"bad-input[{database}]: {len(rows)} crafted rows + {len(generated)} generated rows "
        f"in {examples} batches, worker never stopped, {tally.figures()}"
    )
    assert codes == [0], fleet.logs()[-3000:]


def test_text_that_is_not_utf8_is_marked_invalid_without_blocking_the_queue(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine, "Messages")
    store = SqlOutboxStore(engine, "Messages")
    lenient_text(store)
    good = insert_rows(store, [(1, "before", "default")])
    with store.engine.begin() as conn:
        for raw in NOT_UTF8:
            conn.execute(
                text(
                    'INSERT INTO "Messages" ("UserID", "Message", "MessageType", "ToSend", '
                    f"\"Attempts\") VALUES (1, CAST(X'{raw}' AS TEXT), 'default', 1, 0)"
                )
            )
    good.update(insert_rows(store, [(1, "after", "default")]))
    bad = snapshot(store).keys() - good.keys()

    with (
        FaultReceiver(secret=SECRET) as receiver,
        Fleet(fault_env(sqlite_url, receiver.url), tmp_path) as fleet,
    ):
        worker = fleet.start()
        settle(store, timeout=8)
        assert_verdicts(store, dict.fromkeys(bad, "Message is not valid Unicode"), worker)
        codes = fleet.stop_all()

    tally = assert_invariants(store, snapshot(store), receiver.deliveries(), held_at_faults=0)
    report(f"not-utf8[sqlite]: {len(NOT_UTF8)} rows of invalid UTF-8, {tally.figures()}")
    assert codes == [0]
    store.close()


def run_generated_batches(
    store: SqlOutboxStore, worker: WorkerProcess, examples: int, no_nul: bool
) -> Snapshot:
    """Hypothesis inserts batches of arbitrary rows; each must end as the oracle says."""
    inserted: Snapshot = {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(arbitrary_rows(no_nul), min_size=5, max_size=30))
    def batch(rows: list[tuple[int | None, str | None, str]]) -> None:
        written = insert_rows(store, rows)
        inserted.update(written)
        settle(store, timeout=60, poll=0.05)
        assert_verdicts(store, dict(zip(written, map(oracle, rows), strict=True)), worker)

    batch()
    return inserted


def arbitrary_rows(no_nul: bool) -> st.SearchStrategy[tuple[int | None, str | None, str]]:
    """Mostly plausible rows (so plenty go out), with every kind of bad one mixed in."""
    nul = "\x00" if no_nul else ""
    characters = st.characters(exclude_categories=["Cs"], exclude_characters=nul)
    plain = st.text(characters, min_size=1, max_size=40)
    objects = st.dictionaries(st.text(characters, max_size=6), st.integers() | plain, max_size=3)
    odd = st.sampled_from(["", " ", "\t\n", "\x1c\x1d", "{", "[]", "null", "{}", '{"a": NaN}'])
    messages = plain | plain | objects.map(json.dumps) | odd | st.none()
    types = st.sampled_from(["default"] * 4 + ["json"] * 2 + ["", "nope", "DEFAULT", "default "])
    users = st.integers(1, 2**31 - 1) | st.integers(1, 9) | st.none() | st.integers(-(2**31), 0)
    return st.tuples(users, messages, types)


def oracle(row: tuple[int | None, str | None, str]) -> Verdict:
    """What the contract says becomes of a row: None if it must be sent, else why not."""
    user_id, message, message_type = row
    if message_type not in ("default", "json", ""):  # an empty type is the default type
        return "unknown message type"
    if user_id is None:
        return "UserID is NULL"
    if user_id <= 0:
        return "UserID must be positive"
    if message is None:
        return "Message is NULL"
    if not message.strip():
        return "Message is empty"
    return json_verdict(message) if message_type == "json" else None


def json_verdict(message: str) -> Verdict:
    try:
        value = json.loads(message)
    except ValueError:
        return "Message is not JSON"
    if not isinstance(value, dict):
        return "Message must be a JSON object"
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return "not JSON-serialisable"
    return None


def insert_rows(store: SqlOutboxStore, rows: list[tuple[int | None, str | None, str]]) -> Snapshot:
    """Insert as upstream would, `ToSend = 1`, bypassing every check; returns what was written."""
    values: list[dict[str, Any]] = [
        {"UserID": u, "Message": m, "MessageType": t, "ToSend": 1} for u, m, t in rows
    ]
    statement = insert(store.table).returning(store.table.c.ID, sort_by_parameter_order=True)
    with store.engine.begin() as conn:
        ids = [int(i) for i in conn.execute(statement, values).scalars()]
    return {i: upstream(u, m, t) for i, (u, m, t) in zip(ids, rows, strict=True)}


def assert_verdicts(store: SqlOutboxStore, verdicts: dict[int, Verdict], worker: Any) -> None:
    t = store.table.c
    query = select(t.ID, t.ToSend, t.Status).where(t.ID.in_(list(verdicts)))
    with store.engine.connect() as conn:
        found = {int(r.ID): (int(r.ToSend), r.Status or "") for r in conn.execute(query)}
    for row_id, verdict in verdicts.items():
        state, status = found[row_id]
        if verdict is None:
            assert (state, status[:5]) == (0, "sent:"), f"row {row_id}: {state} {status!r}"
        else:
            assert state == 3 and status.startswith("invalid: "), f"row {row_id}: {status!r}"
            assert verdict in status, f"row {row_id}: {status!r} does not say {verdict!r}"
    assert worker.process.poll() is None, "the worker stopped"
