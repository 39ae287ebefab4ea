"""Agency catalog items (event tickets, permits, fees, donations) and the tickets sold from them."""
