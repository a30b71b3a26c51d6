"""Helpers for the integration tests: real broker and database processes, clients, and waiting."""
