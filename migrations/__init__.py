"""Civic Pay's Alembic migrations, shipped in the wheel next to ``app``.

A package so that an installed copy of Civic Pay can find them with ``importlib.resources``
(see app/migrate.py): env.py, script.py.mako and versions/<rev>_<slug>.py.
"""
