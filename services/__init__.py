"""Ray Serve deployments: the HTTP faces of gridfare services."""
