"""Guests pay a debt by its payment code and a second factor, without an account."""

from flask import Blueprint

bp = Blueprint("guest", __name__, template_folder="templates")
