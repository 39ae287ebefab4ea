"""Platform administration: the agencies on the portal, adding one, the platform's audit log."""
