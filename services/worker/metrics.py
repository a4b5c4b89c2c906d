"""Prometheus metrics of the email pipeline (multiprocess-safe: gauges declare a mode)."""

from __future__ import annotations

from services.common.metrics import Counter, Gauge
from services.worker.rendering import TEMPLATES

EMAILS_QUEUED = Counter(
    "emails_queued_total", "Email jobs picked up for the first time", ["template"]
)
EMAILS_SENT = Counter("emails_sent_total", "Emails accepted by the SMTP server", ["template"])
EMAILS_RETRIED = Counter(
    "emails_retried_total", "Email sends that failed and will be retried", ["template"]
)
EMAILS_DEAD = Counter(
    "emails_dead_total", "Emails that failed for good (dead-lettered)", ["template"]
)
EMAILS_DUPLICATE = Counter(
    "emails_duplicate_skipped_total", "Email jobs skipped because the outbox id was already sent"
)
QUEUE_DEPTH = Gauge(
    "email_queue_depth",
    "Email jobs waiting: ready to run or scheduled for a retry",
    multiprocess_mode="livemax",
)
QUEUE_OLDEST_AGE = Gauge(
    "email_queue_oldest_age_seconds",
    "Age of the oldest email job ready to run (0 when none)",
    multiprocess_mode="livemax",
)

# Every series exists at 0 from the start: `increase(emails_dead_total[15m])` cannot see
# the first dead email of a series that only appears with it.
for _template in (*TEMPLATES, "unknown"):
    for _counter in (EMAILS_QUEUED, EMAILS_SENT, EMAILS_RETRIED, EMAILS_DEAD):
        _counter.labels(_template)
