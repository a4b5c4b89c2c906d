"""The worker refuses an idle-in-transaction limit that could end a send's lock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.worker.settings import WorkerSettings


def test_an_idle_limit_within_a_job_is_refused() -> None:
    with pytest.raises(ValidationError, match="DB_IDLE_IN_TRANSACTION_TIMEOUT"):
        WorkerSettings(db_idle_in_transaction_timeout=30, worker_job_timeout_seconds=60)
    with pytest.raises(ValidationError):
        WorkerSettings(db_idle_in_transaction_timeout=60, worker_job_timeout_seconds=60)


def test_defaults_a_longer_limit_and_no_limit_are_accepted() -> None:
    defaults = WorkerSettings()
    assert defaults.db_idle_in_transaction_timeout > defaults.worker_job_timeout_seconds
    assert WorkerSettings(db_idle_in_transaction_timeout=61, worker_job_timeout_seconds=60)
    assert WorkerSettings(db_idle_in_transaction_timeout=0, worker_job_timeout_seconds=600)
