"""The background worker: email jobs from the services' outboxes, sent over SMTP."""
