"""The auth service: accounts, sessions, tokens and signing keys."""
