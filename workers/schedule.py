"""Celery beat schedule: the nightly reindex at ``DUPESIFT_REINDEX_AT`` (HH:MM, default 03:00 local)."""
from __future__ import annotations

from celery.schedules import crontab

from indexer.errors import DupesiftError


def parse_hhmm(value: str) -> tuple[int, int]:
    try:
        hh, mm = value.strip().split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise DupesiftError(f"DUPESIFT_REINDEX_AT must be HH:MM, got {value!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise DupesiftError(f"DUPESIFT_REINDEX_AT out of range: {value!r}")
    return h, m


def beat_schedule(settings) -> dict:
    h, m = parse_hhmm(settings.reindex_at)
    return {
        "nightly-reindex": {
            "task": "dupesift.reindex",
            "schedule": crontab(hour=h, minute=m),
            # a reindex that could not start before the next one is due is pointless
            "options": {"queue": "cpu", "expires": 23 * 3600},
        },
    }
