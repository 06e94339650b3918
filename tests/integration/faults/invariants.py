"""The invariants every fault scenario ends with, asserted once here.

1. every row is `ToSend = 0` (sent) or `3` (dead, `Status` saying why): none pending or in flight;
2. every sent row reached the receiver with a valid signature, its key, user and content;
3. every delivery of a message carries the key of its first delivery, and duplicates (a
   message processed more than once) stay within the scenario's bound;
4. no row changed outside the dispatcher's columns: `ID`, `UserID`, `Message`, `MessageType`
   are as upstream wrote them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable

import attrs
from sqlalchemy import func, select

from adapters.sql.store import SqlOutboxStore
from tests.integration.faults.fault_receiver import Delivery, content_digest

Upstream = tuple[object, str | None, str]  # UserID, sha256 of Message, MessageType
Snapshot = dict[int, Upstream]


def upstream(user_id: object, message: str | None, message_type: str) -> Upstream:
    return (user_id, _sha256(message), message_type)


@attrs.frozen(kw_only=True)
class Row:
    id: int
    user_id: int | None
    message: str | None
    message_type: str
    to_send: int
    status: str | None
    key: str | None

    def upstream(self) -> Upstream:
        return upstream(self.user_id, self.message, self.message_type)

    def expected_content(self) -> str | None:
        """What the receiver must have got: the text, or the parsed object of a `json` row."""
        if self.message_type == "json" and self.message is not None:
            return content_digest(json.loads(self.message))
        return content_digest(self.message)


@attrs.frozen(kw_only=True)
class Tally:
    rows: int
    sent: int
    dead: int
    invalid: int
    lost: int
    stuck: int
    duplicates: int
    held_at_faults: int
    lost_responses: int
    deliveries: int

    def figures(self) -> str:
        return (
            f"{self.rows} rows, {self.sent} sent, {self.dead + self.invalid} dead "
            f"({self.invalid} invalid), {self.lost} lost, {self.duplicates} duplicates (all same "
            f"key; bound {self.held_at_faults + self.lost_responses}: {self.held_at_faults} held "
            f"at faults + {self.lost_responses} lost responses), {self.stuck} stuck"
        )


def read_rows(store: SqlOutboxStore) -> dict[int, Row]:
    t = store.table.c
    query = select(t.ID, t.UserID, t.Message, t.MessageType, t.ToSend, t.Status, t.IdempotencyKey)
    with store.engine.connect() as conn:
        return {
            int(r.ID): Row(
                id=int(r.ID),
                user_id=r.UserID,
                message=r.Message,
                message_type=r.MessageType,
                to_send=int(r.ToSend),
                status=r.Status,
                key=r.IdempotencyKey,
            )
            for r in conn.execute(query)
        }


def snapshot(store: SqlOutboxStore) -> Snapshot:
    """What upstream wrote, per row: compared with the rows once the scenario is over."""
    return {row_id: row.upstream() for row_id, row in read_rows(store).items()}


def lost_responses(store: SqlOutboxStore) -> int:
    """Attempts that ended in a transport error (timeout, reset): the receiver may have acted
    on them, so each may cause one duplicate even when nothing crashed."""
    h = store.history.c
    never_arrived = ("ConnectError", "ConnectTimeout")
    query = select(func.count()).where(h.Error.is_not(None), h.Error.not_in(never_arrived))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def assert_invariants(
    store: SqlOutboxStore, before: Snapshot, deliveries: list[Delivery], *, held_at_faults: int
) -> Tally:
    """Assert the four invariants; `held_at_faults`: rows the scenario's faults caught in
    flight (the most that may reach the receiver twice, besides lost responses)."""
    lost_answers = lost_responses(store)
    rows = read_rows(store)
    stuck = _assert_finished(rows.values())
    _assert_untouched(rows, before)
    lost = _assert_received(rows, deliveries)
    duplicates = _assert_same_keys_and_bounded(deliveries, held_at_faults + lost_answers)
    states = Counter(row.to_send for row in rows.values())
    invalid = sum(1 for row in rows.values() if (row.status or "").startswith("invalid:"))
    return Tally(
        rows=len(rows),
        sent=states[0],
        dead=states[3] - invalid,
        invalid=invalid,
        lost=lost,
        stuck=stuck,
        duplicates=duplicates,
        held_at_faults=held_at_faults,
        lost_responses=lost_answers,
        deliveries=len(deliveries),
    )


def _assert_finished(rows: Iterable[Row]) -> int:
    unfinished = [row for row in rows if row.to_send not in (0, 3)]
    assert not unfinished, f"{len(unfinished)} row(s) not finished, e.g. {unfinished[:3]}"
    for row in rows:
        word = "sent:" if row.to_send == 0 else ("dead:", "invalid:")
        assert (row.status or "").startswith(word), f"row {row.id}: Status {row.status!r}"
        assert len(row.status or "") <= 400, f"row {row.id}: Status longer than 400"
    return len(unfinished)


def _assert_untouched(rows: dict[int, Row], before: Snapshot) -> None:
    assert rows.keys() == before.keys(), "rows appeared or disappeared"
    changed = [row_id for row_id, row in rows.items() if row.upstream() != before[row_id]]
    assert not changed, f"upstream columns changed on rows {changed[:10]}"


def _assert_received(rows: dict[int, Row], deliveries: list[Delivery]) -> int:
    forged = [d for d in deliveries if not d.signature_valid or d.webhook_id != d.key]
    assert not forged, f"{len(forged)} deliveries with a bad signature, e.g. {forged[:2]}"
    strangers = {d.message_id for d in deliveries} - rows.keys()
    assert not strangers, f"deliveries of rows not in the table: {sorted(strangers, key=str)[:5]}"
    good: set[tuple[int | None, str | None, object, str | None]] = {
        (d.message_id, d.key, d.user_id, d.content) for d in deliveries if d.processed
    }
    lost = [
        row
        for row in rows.values()
        if row.to_send == 0 and (row.id, row.key, row.user_id, row.expected_content()) not in good
    ]
    assert not lost, f"{len(lost)} sent row(s) never received intact, e.g. {lost[:3]}"
    never_posted = {r.id for r in rows.values() if (r.status or "").startswith("invalid:")}
    posted = never_posted & {d.message_id for d in deliveries}
    assert not posted, f"invalid rows were POSTed: {sorted(posted)[:10]}"
    return len(lost)


def _assert_same_keys_and_bounded(deliveries: list[Delivery], bound: int) -> int:
    first_key: dict[int | None, str | None] = {}
    processed: defaultdict[int | None, int] = defaultdict(int)
    for delivery in sorted(deliveries, key=lambda d: d.at):
        key = first_key.setdefault(delivery.message_id, delivery.key)
        assert delivery.key == key, f"message {delivery.message_id}: key {delivery.key} != {key}"
        processed[delivery.message_id] += delivery.processed
    duplicates = sum(max(0, count - 1) for count in processed.values())
    assert duplicates <= bound, f"{duplicates} duplicate deliveries, bound {bound}"
    return duplicates


def _sha256(text: str | None) -> str | None:
    if text is None:
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
