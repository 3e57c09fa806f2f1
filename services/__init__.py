"""Ray Serve deployments: the seats HTTP API and the accounts processors."""
