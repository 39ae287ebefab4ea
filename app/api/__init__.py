"""The open API for agencies' ERPs and partner platforms (JSON, per-agency tokens)."""
