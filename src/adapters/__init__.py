"""Adapters for the ports: SQL stores, the HTTP sender, and in-memory twins for tests."""
