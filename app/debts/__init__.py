"""The debt register: debts, debtors and installments copied from the ERPs, and what is payable today."""
