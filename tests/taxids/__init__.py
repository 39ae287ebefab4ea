"""Tests of linking a tax ID to an account (fixtures in conftest.py)."""
