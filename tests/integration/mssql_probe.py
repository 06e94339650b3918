"""Run as a process: connect through `make_engine` and print how it went, on one line.

A separate process, so a driver that hangs can be killed by the test instead of hanging it.
"""

from __future__ import annotations

import sys

from adapters.sql.engine import make_engine
from entrypoints.errors import describe_startup_error


def main(url: str) -> int:
    engine = make_engine(url, connect_timeout=2)
    try:
        with engine.connect():
            print("connected")
            return 0
    except Exception as error:
        print(describe_startup_error(error))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
