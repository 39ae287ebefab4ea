"""Citizen accounts: log in, log out, and the tax IDs an account acts for."""
