"""ERP write-back: tells each agency's ERP of the payments, sales and refunds made in the portal.

It listens to ``payment.succeeded`` and ``refund.made`` and writes one outbox message per fact
(and per agency), in the transaction of the fact; the outbox worker later hands each message to
the agency's ERP connector until the ERP acknowledges it.
"""
