"""Pure domain of the outbox dispatcher: no I/O, no clock, no randomness."""
