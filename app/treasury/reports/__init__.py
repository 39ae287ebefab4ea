"""Reports: the daily settlement of an agency and the adoption of online payment."""
