"""The transactional outbox: messages written with a state change, delivered later until acknowledged."""
