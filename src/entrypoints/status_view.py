"""How `outbox status` prints an overview."""

from __future__ import annotations

import json
from datetime import datetime

import attrs

from application.ports import Overview
from domain.breaker import TargetHealth
from domain.model import State

_WORDS = {0: "sent", 1: "pending", 2: "in flight", 3: "dead"}


@attrs.frozen(kw_only=True)
class Health:
    """The retry policy in one line, and each target's breaker as last reported."""

    retries: str
    targets: list[TargetHealth] = attrs.field(factory=list)

    def lines(self) -> list[str]:
        lines = [f"retries: {self.retries}"]
        lines += [
            f"target {t.target}: {t.state.value} since {_stamp(t.since)}"
            + (f", last error: {t.last_error}" if t.last_error else "")
            for t in self.targets
        ]
        return lines

    def as_dict(self) -> dict[str, object]:
        return {
            "retries": self.retries,
            "targets": [
                {
                    "target": t.target,
                    "state": t.state.value,
                    "since": _stamp(t.since),
                    "last_error": t.last_error,
                    "updated_at": _stamp(t.updated_at),
                    "reported_by": t.reported_by,
                }
                for t in self.targets
            ],
        }


def _stamp(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_overview(overview: Overview, *, as_json: bool, health: Health | None = None) -> str:
    if as_json:
        document = _as_dict(overview) | (health.as_dict() if health else {})
        return json.dumps(document, indent=2)
    lines = [f"ToSend {s} {_WORDS[s]:<10} {overview.counts.get(s, 0):>10}" for s in (1, 2, 0, 3)]
    age = overview.oldest_pending_age_seconds
    lines.append(f"oldest due row waiting: {'-' if age is None else f'{age:.1f} s'}")
    for owner, count in sorted(overview.leases.items()):
        lines.append(f"lease held by {owner}: {count} row(s)")
    if overview.recent_dead:
        lines.append("latest dead rows:")
        lines += [f"  {m.id}: {m.status}" for m in overview.recent_dead]
    if health is not None:
        lines += health.lines()
    return "\n".join(lines)


def _as_dict(overview: Overview) -> dict[str, object]:
    return {
        "counts": {State(s).name.lower(): overview.counts.get(s, 0) for s in (0, 1, 2, 3)},
        "oldest_pending_age_seconds": overview.oldest_pending_age_seconds,
        "leases": overview.leases,
        "recent_dead": [{"id": m.id, "status": m.status} for m in overview.recent_dead],
    }
