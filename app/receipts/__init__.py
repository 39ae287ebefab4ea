"""Receipts: the payment owner's PDF, and the public page a receipt's QR code points to."""

from flask import Blueprint

bp = Blueprint("receipts", __name__, template_folder="templates")
