"""Settings only the queue needs, on top of ``indexer.config.Settings`` (same ``DUPESIFT_`` prefix)."""
from __future__ import annotations

from pydantic import Field

from indexer.config import SETTINGS_FILE, Settings


class WorkerSettings(Settings):
    reindex_at: str = "03:00"  # nightly reindex, HH:MM local time (or DUPESIFT_TIMEZONE)
    timezone: str | None = None  # IANA name for the beat schedule; None = the host's local time
    queue_prefix: str = ""  # Redis key prefix: several dupesift deployments (or test runs) on one Redis
    visibility_timeout: int = Field(default=3600, gt=0)  # s before an unacked task of a dead worker is redelivered
    task_max_retries: int = Field(default=8, ge=0)
    gpu_fp16: bool = True  # with the CUDA provider, run an fp16 copy of the model


def load_worker_settings(**overrides: object) -> WorkerSettings:
    base = WorkerSettings(**overrides)
    env_file = base.data_dir / SETTINGS_FILE
    return WorkerSettings(_env_file=env_file, **overrides) if env_file.is_file() else base
