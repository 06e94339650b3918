"""Entry points: configuration, the container, the CLI, the worker loop, the receiver."""
