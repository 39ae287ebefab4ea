"""Linking a tax ID to an account, proven by a one-time code or by a payment notice."""

from flask import Blueprint

bp = Blueprint("taxids", __name__, template_folder="templates")
