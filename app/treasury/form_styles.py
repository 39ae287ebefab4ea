"""What the treasury's forms share: the look of a select box."""

SELECT_LOOK = {"style": "padding: .45rem; font: inherit; border: 2px solid var(--ink);"}
