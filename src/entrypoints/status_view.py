"""How `outbox status` prints an overview."""

from __future__ import annotations

import json

from application.ports import Overview
from domain.model import State

_WORDS = {0: "sent", 1: "pending", 2: "in flight", 3: "dead"}


def render_overview(overview: Overview, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(_as_dict(overview), indent=2)
    lines = [f"ToSend {s} {_WORDS[s]:<10} {overview.counts.get(s, 0):>10}" for s in (1, 2, 0, 3)]
    age = overview.oldest_pending_age_seconds
    lines.append(f"oldest due row waiting: {'-' if age is None else f'{age:.1f} s'}")
    for owner, count in sorted(overview.leases.items()):
        lines.append(f"lease held by {owner}: {count} row(s)")
    if overview.recent_dead:
        lines.append("latest dead rows:")
        lines += [f"  {m.id}: {m.status}" for m in overview.recent_dead]
    return "\n".join(lines)


def _as_dict(overview: Overview) -> dict[str, object]:
    return {
        "counts": {State(s).name.lower(): overview.counts.get(s, 0) for s in (0, 1, 2, 3)},
        "oldest_pending_age_seconds": overview.oldest_pending_age_seconds,
        "leases": overview.leases,
        "recent_dead": [{"id": m.id, "status": m.status} for m in overview.recent_dead],
    }
