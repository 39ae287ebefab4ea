"""Who may open the treasury: staff, their roles and invitations, the second factor, the access check."""
