"""Suppressions: known-good activity a detection must not tag."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from falco_risk.match import Condition


@dataclass(frozen=True)
class Suppression:
    """A named, reasoned exception to one detection, optionally until a date."""

    name: str
    reason: str
    condition: Condition
    expires: dt.date | None = None

    @property
    def expires_at(self) -> float | None:
        """The Unix time it stops applying: the end of its expiry date, UTC."""
        if self.expires is None:
            return None
        end = dt.datetime.combine(self.expires, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1)
        return end.timestamp()

    def expired(self, now: float) -> bool:
        """True once the expiry date has passed."""
        expires_at = self.expires_at
        return expires_at is not None and now >= expires_at
