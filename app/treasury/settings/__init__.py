"""Agency settings: payable online, surcharges, withholdings, guest factors, credentials, e-mail texts."""
