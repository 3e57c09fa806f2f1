"""Ray Serve deployments: the seats HTTP API (and the other HTTP faces of gridfare)."""
