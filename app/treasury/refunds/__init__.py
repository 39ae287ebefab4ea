"""Refunds from the payment page, for staff with the refund role."""
