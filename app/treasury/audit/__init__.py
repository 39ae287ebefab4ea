"""The agency's audit log: searchable, exported as CSV."""
