"""Tests of the outbox: delivery by topic, retries, the worker (helpers in helpers.py)."""
