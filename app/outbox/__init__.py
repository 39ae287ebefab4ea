"""The transactional outbox: messages of registered topics, written with a state change, delivered until acknowledged."""
