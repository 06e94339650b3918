"""Ports and the dispatch service: claim, build and validate, send, ack."""
