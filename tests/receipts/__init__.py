"""Receipts: the PDF, its QR code, the public verification page, and the filtered history (helpers in helpers.py)."""
