"""Webhooks: card providers tell the portal what happened to a payment, signed."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)
