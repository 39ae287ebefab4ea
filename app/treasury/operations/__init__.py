"""Operations: the agency's sync runs, quarantined ERP records and write-back (outbox) dead letters."""
