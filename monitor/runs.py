"""What one run did with each source: the outcome every collector reports the same way.

Outcomes are stored per run (``source_runs``) so the digest can say which sources failed and
``monitor status`` can show each source's health.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.store import Store


@dataclass
class SourceOutcome:
    business: str
    source: str
    status: str
    """ok, empty (reached, nothing found), skipped (not configured, e.g. no credentials), failed."""
    new: int = 0
    duplicates: int = 0
    dropped: int = 0
    errors: int = 0
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.business}/{self.source}: {self.status}, {self.new} new, "
            f"{self.duplicates} already stored, {self.dropped} dropped{reason}"
        )


def record_outcome(
    store: Store, run_id: int | None, source_id: int, outcome: SourceOutcome
) -> None:
    if run_id is None:
        return
    store.record_source_run(
        run_id,
        source_id,
        status=outcome.status,
        new=outcome.new,
        duplicates=outcome.duplicates,
        dropped=outcome.dropped,
        errors=outcome.errors,
        detail={"reason": outcome.reason, **outcome.detail},
    )
