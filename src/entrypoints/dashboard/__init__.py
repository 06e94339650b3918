"""`outbox dashboard`: the operator's web page over the outbox table."""
