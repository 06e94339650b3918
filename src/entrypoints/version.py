from importlib.metadata import PackageNotFoundError, version

NAME = "outbox-dispatcher"


def package_version() -> str:
    try:
        return version(NAME)
    except PackageNotFoundError:
        return "0+unknown"


def user_agent() -> str:
    return f"{NAME}/{package_version()}"
