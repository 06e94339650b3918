"""One module per message type, each exposing `MESSAGE_TYPE`; found by discovery at start-up."""
