"""Arrow schemas, synthetic generators and the data centre store."""
