"""ERP sync: copy each agency's debts from its ERP connector into the portal."""
