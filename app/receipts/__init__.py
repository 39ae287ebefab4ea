"""Receipts: the PDF, the public page its QR code points to, and the receipt and refund e-mails."""

from flask import Blueprint

bp = Blueprint("receipts", __name__, template_folder="templates")
