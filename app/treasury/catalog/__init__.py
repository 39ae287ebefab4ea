"""The agency's catalog (tickets, permits, fees, donations) and the door's ticket check."""
