"""Ray Serve deployments: the accounts processors (the seats HTTP app is in rayjobs)."""
