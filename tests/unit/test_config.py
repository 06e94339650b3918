import pytest

from entrypoints.config import ConfigError, Settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def error_for(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    return str(raised.value)


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})

    assert (
        settings.database_url,
        settings.table,
        settings.target_url,
        settings.signing_secret,
        settings.ordering,
        settings.allow_private_targets,
        settings.log_format,
    ) == ("sqlite:///outbox.db", "Messages", None, None, "none", False, "text")


def test_the_defaults_are_consistent_numbers() -> None:
    settings = Settings.from_env({})

    assert settings.lease_seconds >= 2 * settings.http_timeout
    assert settings.retry_base_seconds <= settings.retry_max_seconds
    assert settings.batch_size >= 1 and settings.max_attempts >= 1


def test_blank_variables_count_as_unset() -> None:
    settings = Settings.from_env({"OUTBOX_BATCH_SIZE": "  ", "OUTBOX_TABLE": ""})

    assert settings == Settings()


def test_values_are_read_and_converted() -> None:
    env = {
        "OUTBOX_BATCH_SIZE": "50",
        "OUTBOX_TABLE": "Outbox_2",
        "OUTBOX_TARGET_URL": "https://hooks.example.com/in",
        "OUTBOX_ORDERING": "Per-User",
        "OUTBOX_ALLOW_PRIVATE_TARGETS": "yes",
        "OUTBOX_RETRY_BASE_SECONDS": "0.5",
    }

    settings = Settings.from_env(env)

    assert (
        settings.batch_size,
        settings.table,
        settings.target_url,
        settings.ordering,
        settings.allow_private_targets,
        settings.retry_base_seconds,
    ) == (50, "Outbox_2", "https://hooks.example.com/in", "per-user", True, 0.5)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("OUTBOX_BATCH_SIZE", "lots"),
        ("OUTBOX_BATCH_SIZE", "2.5"),
        ("OUTBOX_BATCH_SIZE", "0"),
        ("OUTBOX_BATCH_SIZE", "100000"),
        ("OUTBOX_CONCURRENCY", "-1"),
        ("OUTBOX_POLL_INTERVAL", "nan"),
        ("OUTBOX_MAX_ATTEMPTS", "0"),
        ("OUTBOX_HTTP_TIMEOUT", "inf"),
        ("OUTBOX_METRICS_PORT", "70000"),
        ("OUTBOX_TABLE", "Messages; DROP TABLE x"),
        ("OUTBOX_TABLE", "dbo.Messages"),
        ("OUTBOX_TABLE", "1Messages"),
        ("OUTBOX_TARGET_URL", "ftp://hooks.example.com/in"),
        ("OUTBOX_TARGET_URL", "hooks.example.com/in"),
        ("OUTBOX_ORDERING", "per_user"),
        ("OUTBOX_LOG_FORMAT", "xml"),
        ("OUTBOX_ALLOW_PRIVATE_TARGETS", "maybe"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable(variable: str, value: str) -> None:
    message = error_for({variable: value})

    assert message.startswith(f"{variable} must be")


@pytest.mark.parametrize("value", ["hunter2", "whsec_short", "whsec_" + "!" * 32])
def test_a_malformed_secret_is_an_error_naming_its_variable(value: str) -> None:
    message = error_for({"OUTBOX_SIGNING_SECRET": value})

    assert message.startswith("OUTBOX_SIGNING_SECRET must be")


@pytest.mark.parametrize("value", ["whsec_short", f"{SECRET} whsec_short"])
def test_a_malformed_secret_never_appears_in_the_error(value: str) -> None:
    message = error_for({"OUTBOX_SIGNING_SECRET": value})

    assert "whsec_short" not in message and SECRET not in message


def test_the_secret_never_appears_in_repr() -> None:
    settings = Settings.from_env({"OUTBOX_SIGNING_SECRET": SECRET})

    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_several_secrets_can_be_given_for_rotation() -> None:
    other = "whsec_" + "A" * 32

    settings = Settings.from_env({"OUTBOX_SIGNING_SECRET": f"{SECRET} {other}"})

    assert settings.signing_secrets() == (SECRET, other)


def test_the_database_password_never_appears_in_repr() -> None:
    env = {"OUTBOX_DATABASE_URL": "postgresql+psycopg://outbox:s3cr3t-pw@db.internal/outbox"}

    settings = Settings.from_env(env)

    assert "s3cr3t-pw" not in repr(settings)


def test_a_lease_shorter_than_twice_the_http_timeout_is_refused() -> None:
    env = {"OUTBOX_LEASE_SECONDS": "19", "OUTBOX_HTTP_TIMEOUT": "10"}

    message = error_for(env)

    assert message.startswith("OUTBOX_LEASE_SECONDS (19) must be at least twice OUTBOX_HTTP")


def test_a_lease_of_exactly_twice_the_http_timeout_is_accepted() -> None:
    env = {"OUTBOX_LEASE_SECONDS": "20", "OUTBOX_HTTP_TIMEOUT": "10"}

    settings = Settings.from_env(env)

    assert settings.lease_seconds == 20.0


def test_a_retry_cap_below_the_base_delay_is_refused() -> None:
    env = {"OUTBOX_RETRY_BASE_SECONDS": "10", "OUTBOX_RETRY_MAX_SECONDS": "5"}

    message = error_for(env)

    assert message.startswith("OUTBOX_RETRY_MAX_SECONDS (5) must be >= OUTBOX_RETRY_BASE_SECONDS")


def test_a_bad_target_map_entry_is_an_error_naming_its_variable() -> None:
    message = error_for({"OUTBOX_TARGET_URLS": "sms=https://a.example.com,json"})

    assert message.startswith("OUTBOX_TARGET_URLS must be")


def test_the_default_retry_schedule_is_the_standard_webhooks_one() -> None:
    assert Settings.from_env({}).retry_schedule == (
        5.0,
        300.0,
        1800.0,
        7200.0,
        18000.0,
        36000.0,
        50400.0,
        72000.0,
        86400.0,
    )


def test_an_explicit_retry_schedule_is_read_in_units() -> None:
    settings = Settings.from_env({"OUTBOX_RETRY_SCHEDULE": "500ms, 5s,5m,2h,1d, 7"})

    assert settings.retry_schedule == (0.5, 5.0, 300.0, 7200.0, 86400.0, 7.0)


def test_setting_an_exponential_knob_alone_selects_the_exponential_policy() -> None:
    settings = Settings.from_env({"OUTBOX_MAX_ATTEMPTS": "3"})

    assert settings.retry_schedule == "exponential" and settings.max_attempts == 3


def test_exponential_can_be_named_outright() -> None:
    assert Settings.from_env({"OUTBOX_RETRY_SCHEDULE": "Exponential"}).retry_schedule == (
        "exponential"
    )


@pytest.mark.parametrize("raw", ["5s,,5m", "5x", "0s", "-5s", "40d", "fast"])
def test_a_bad_retry_schedule_names_the_variable(raw: str) -> None:
    assert error_for({"OUTBOX_RETRY_SCHEDULE": raw}).startswith("OUTBOX_RETRY_SCHEDULE must be")


def test_a_listed_schedule_with_an_exponential_knob_is_refused() -> None:
    message = error_for({"OUTBOX_RETRY_SCHEDULE": "5s,5m", "OUTBOX_MAX_ATTEMPTS": "4"})

    assert message.startswith("OUTBOX_MAX_ATTEMPTS applies only to OUTBOX_RETRY_SCHEDULE")


def test_breaker_and_target_settings_are_read_and_checked() -> None:
    env = {"OUTBOX_BREAKER_FAILURES": "3", "OUTBOX_TARGET_CONCURRENCY": "8"}
    settings = Settings.from_env(env)

    assert (settings.breaker_failures, settings.target_concurrency) == (3, 8)
    assert error_for({"OUTBOX_BREAKER_COOLDOWN": "0"}).startswith("OUTBOX_BREAKER_COOLDOWN must")
    assert error_for(
        {"OUTBOX_BREAKER_COOLDOWN": "30", "OUTBOX_BREAKER_COOLDOWN_MAX": "10"}
    ).startswith("OUTBOX_BREAKER_COOLDOWN_MAX (10) must be >=")


def test_rows_behind_an_open_breaker_are_parked_an_hour_unless_set() -> None:
    assert Settings.from_env({}).breaker_park == 3600
    assert Settings.from_env({"OUTBOX_BREAKER_PARK": "600"}).breaker_park == 600
    assert error_for({"OUTBOX_BREAKER_PARK": "0"}).startswith("OUTBOX_BREAKER_PARK must")
    assert error_for({"OUTBOX_BREAKER_PARK": "30"}).startswith(
        "OUTBOX_BREAKER_PARK (30) must be >= OUTBOX_BREAKER_COOLDOWN_MAX (60)"
    )


def test_one_worker_process_is_the_default_and_auto_means_one_per_usable_core() -> None:
    import os

    assert Settings.from_env({}).processes == 1
    assert Settings.from_env({"OUTBOX_PROCESSES": "3"}).processes == 3
    cores = len(os.sched_getaffinity(0))
    assert Settings.from_env({"OUTBOX_PROCESSES": "Auto"}).processes == cores


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5", "257"])
def test_a_bad_process_count_names_the_variable(raw: str) -> None:
    assert error_for({"OUTBOX_PROCESSES": raw}) == (
        f"OUTBOX_PROCESSES must be auto or a number between 1 and 256, got '{raw}'"
    )


@pytest.mark.parametrize(
    "field, value, variable",
    [
        ("batch_size", 0, "OUTBOX_BATCH_SIZE"),
        ("batch_size", 100_000, "OUTBOX_BATCH_SIZE"),
        ("poll_interval", float("nan"), "OUTBOX_POLL_INTERVAL"),
        ("http_timeout", float("inf"), "OUTBOX_HTTP_TIMEOUT"),
        ("metrics_port", 70_000, "OUTBOX_METRICS_PORT"),
        ("processes", 0, "OUTBOX_PROCESSES"),
        ("table", "Messages; DROP TABLE x", "OUTBOX_TABLE"),
        ("target_url", "ftp://hooks.example.com/in", "OUTBOX_TARGET_URL"),
        ("target_urls", {"sms": "hooks.example.com"}, "OUTBOX_TARGET_URLS"),
        ("signing_secret", "hunter2", "OUTBOX_SIGNING_SECRET"),
        ("retry_schedule", (5.0, 0.0), "OUTBOX_RETRY_SCHEDULE"),
        ("retry_schedule", (), "OUTBOX_RETRY_SCHEDULE"),
        ("ordering", "per_user", "OUTBOX_ORDERING"),
        ("http_engine", "requests", "OUTBOX_HTTP_ENGINE"),
        ("message_type_packages", ("my-types",), "OUTBOX_MESSAGE_TYPE_PACKAGES"),
    ],
)
def test_settings_built_in_code_are_held_to_the_same_bounds(
    field: str, value: object, variable: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings(**{field: value})  # type: ignore[arg-type]

    assert str(raised.value).startswith(f"{variable} must be")
    assert "hunter2" not in str(raised.value)


def test_settings_built_in_code_are_held_to_the_same_consistency_rules() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings(lease_seconds=10, http_timeout=10)

    assert str(raised.value).startswith("OUTBOX_LEASE_SECONDS (10) must be at least twice")


def test_settings_built_in_code_within_the_bounds_are_accepted() -> None:
    settings = Settings(batch_size=1000, processes=256, retry_schedule=(0.5, 30 * 86400.0))

    assert (settings.batch_size, settings.processes) == (1000, 256)
