"""Configuration: defaults, validation with one clear line naming the variable, TOML mirroring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def test_defaults_match_the_specification(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    s = load_settings({})
    assert s.database_url is None
    assert s.data_dir == Path(".dispatcher")
    assert s.host == "127.0.0.1"
    assert s.port == 8080
    assert s.admin_token is None
    assert s.publish_tokens == ()
    assert s.events_enabled is True
    assert s.max_payload_bytes == 524288
    assert s.max_retries == 8
    # "operator-friendly (seconds)": a few seconds, not milliseconds nor hours.
    assert 1 <= s.retry_base_seconds <= 60
    # "hours": the cap on one retry delay.
    assert 3600 <= s.retry_max_delay_seconds <= 24 * 3600
    assert s.retry_base_seconds < s.retry_max_delay_seconds
    assert s.max_age_seconds == 864000
    assert s.delivery_timeout_seconds == 15
    # "a sane default": enabled, and not so low that one bad burst disables a webhook.
    assert s.failures_before_disable >= 5
    assert s.failure_window_seconds == 10
    assert s.allow_private_targets is False
    assert s.reload_interval_seconds == 300
    assert s.lease_seconds == 30
    assert s.retention_days == 30
    assert s.metrics_per_webhook is False
    assert s.secret_grace_seconds == 86400
    assert s.log_format == "json"
    assert s.workers == 1
    assert s.header_timeout_seconds == 10


def test_log_format_defaults_to_console_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert load_settings({}).log_format == "console"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert load_settings({}).log_format == "json"


def test_every_variable_is_read_from_the_environment() -> None:
    env = {
        "DISPATCHER_DATABASE_URL": "postgresql://u:p@db.example/dispatcher",
        "DISPATCHER_DATA_DIR": "/var/lib/dispatcher",
        "DISPATCHER_HOST": "192.0.2.10",
        "DISPATCHER_PORT": "9001",
        "DISPATCHER_ADMIN_TOKEN": "admin-token-0123456789",
        "DISPATCHER_PUBLISH_TOKENS": "pub-token-one-0123456, pub-token-two-0123456 ,",
        "DISPATCHER_EVENTS_ENABLED": "false",
        "DISPATCHER_MAX_PAYLOAD_BYTES": "2048",
        "DISPATCHER_MAX_RETRIES": "0",
        "DISPATCHER_RETRY_BASE_SECONDS": "0.5",
        "DISPATCHER_RETRY_MAX_DELAY_SECONDS": "60",
        "DISPATCHER_MAX_AGE_SECONDS": "3600",
        "DISPATCHER_DELIVERY_TIMEOUT_SECONDS": "2.5",
        "DISPATCHER_FAILURES_BEFORE_DISABLE": "-1",
        "DISPATCHER_FAILURE_WINDOW_SECONDS": "30",
        "DISPATCHER_ALLOW_PRIVATE_TARGETS": "true",
        "DISPATCHER_RELOAD_INTERVAL_SECONDS": "5",
        "DISPATCHER_LEASE_SECONDS": "10",
        "DISPATCHER_RETENTION_DAYS": "7",
        "DISPATCHER_METRICS_PER_WEBHOOK": "1",
        "DISPATCHER_SECRET_GRACE_SECONDS": "0",
        "DISPATCHER_LOG_FORMAT": "console",
        "DISPATCHER_WORKERS": "4",
        "DISPATCHER_HEADER_TIMEOUT_SECONDS": "2.5",
    }
    s = load_settings(env)
    assert s.database_url == "postgresql://u:p@db.example/dispatcher"
    assert s.data_dir == Path("/var/lib/dispatcher")
    assert s.host == "192.0.2.10"
    assert s.port == 9001
    assert s.admin_token == "admin-token-0123456789"
    assert s.publish_tokens == ("pub-token-one-0123456", "pub-token-two-0123456")
    assert s.events_enabled is False
    assert s.max_payload_bytes == 2048
    assert s.max_retries == 0
    assert s.retry_base_seconds == 0.5
    assert s.retry_max_delay_seconds == 60
    assert s.max_age_seconds == 3600
    assert s.delivery_timeout_seconds == 2.5
    assert s.failures_before_disable == -1
    assert s.failure_window_seconds == 30
    assert s.allow_private_targets is True
    assert s.reload_interval_seconds == 5
    assert s.lease_seconds == 10
    assert s.retention_days == 7
    assert s.metrics_per_webhook is True
    assert s.secret_grace_seconds == 0
    assert s.log_format == "console"
    assert s.workers == 4
    assert s.header_timeout_seconds == 2.5


def test_an_empty_database_url_means_embedded() -> None:
    assert load_settings({"DISPATCHER_DATABASE_URL": ""}).database_url is None
    assert load_settings({"DISPATCHER_DATABASE_URL": "postgres://x/y"}).database_url == (
        "postgres://x/y"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DISPATCHER_PORT", "abc"),
        ("DISPATCHER_PORT", "70000"),
        ("DISPATCHER_PORT", "-1"),
        ("DISPATCHER_MAX_RETRIES", "-1"),
        ("DISPATCHER_MAX_RETRIES", "three"),
        ("DISPATCHER_EVENTS_ENABLED", "maybe"),
        ("DISPATCHER_ALLOW_PRIVATE_TARGETS", "perhaps"),
        ("DISPATCHER_LOG_FORMAT", "xml"),
        ("DISPATCHER_FAILURES_BEFORE_DISABLE", "0"),
        ("DISPATCHER_FAILURES_BEFORE_DISABLE", "-2"),
        ("DISPATCHER_DATABASE_URL", "mysql://x"),
        ("DISPATCHER_MAX_PAYLOAD_BYTES", "big"),
        ("DISPATCHER_DELIVERY_TIMEOUT_SECONDS", "0"),
        ("DISPATCHER_WORKERS", "0"),
        ("DISPATCHER_ADMIN_TOKEN", "short"),
        ("DISPATCHER_PUBLISH_TOKENS", "tooshort"),
        ("DISPATCHER_SECRET_GRACE_SECONDS", "-5"),
        ("DISPATCHER_HEADER_TIMEOUT_SECONDS", "0"),
    ],
)
def test_bad_values_raise_one_line_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({variable: value})
    message = str(info.value)
    assert message.startswith(variable + ":"), message
    assert "\n" not in message
    assert len(message) > len(variable) + 2


def test_the_first_bad_variable_is_named_even_with_good_ones_around() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"DISPATCHER_HOST": "192.0.2.10", "DISPATCHER_LOG_FORMAT": "xml"})
    assert str(info.value).startswith("DISPATCHER_LOG_FORMAT:")


def test_a_toml_file_mirrors_the_variables(tmp_path: Path) -> None:
    config = tmp_path / "dispatcher.toml"
    config.write_text(
        'port = 9000\nhost = "192.0.2.10"\nmax_retries = 3\nevents_enabled = false\n'
        'publish_tokens = ["pub-token-one-0123456"]\n'
    )
    s = load_settings({}, config_file=config)
    assert s.port == 9000
    assert s.host == "192.0.2.10"
    assert s.max_retries == 3
    assert s.events_enabled is False
    assert s.publish_tokens == ("pub-token-one-0123456",)
    # The file can also be named by DISPATCHER_CONFIG.
    assert load_settings({"DISPATCHER_CONFIG": str(config)}).port == 9000


def test_the_environment_overrides_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "dispatcher.toml"
    config.write_text("port = 9000\nmax_retries = 3\n")
    s = load_settings({"DISPATCHER_PORT": "9100"}, config_file=config)
    assert s.port == 9100
    assert s.max_retries == 3
    s = load_settings({"DISPATCHER_CONFIG": str(config), "DISPATCHER_PORT": "9200"})
    assert s.port == 9200


def test_a_bad_value_in_the_toml_file_names_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "dispatcher.toml"
    config.write_text("port = 70000\n")
    with pytest.raises(ConfigError) as info:
        load_settings({}, config_file=config)
    assert str(info.value).startswith("DISPATCHER_PORT:")


@pytest.mark.parametrize(
    "content", ["colour = 'red'\n", "port = \n", "[section]\nport = 1\n"], ids=str
)
def test_an_unreadable_or_unknown_toml_is_a_config_error(tmp_path: Path, content: str) -> None:
    config = tmp_path / "dispatcher.toml"
    config.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings({}, config_file=config)
    message = str(info.value)
    assert message.startswith("DISPATCHER_"), message
    assert "\n" not in message


def test_a_missing_toml_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"DISPATCHER_CONFIG": str(tmp_path / "nope.toml")})
    assert str(info.value).startswith("DISPATCHER_CONFIG:")


def test_settings_are_immutable() -> None:
    s = load_settings({})
    with pytest.raises(Exception, match="frozen"):
        s.port = 1  # type: ignore[misc]
    assert isinstance(s, Settings)


def test_serve_with_a_bad_port_exits_with_one_line_on_stderr(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        {
            "DISPATCHER_PORT": "abc",
            "DISPATCHER_DATA_DIR": str(tmp_path / "data"),
            "PYTHONPATH": str(REPO),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dispatcher", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "DISPATCHER_PORT" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    # It stopped before doing anything: no embedded Postgres, no token.
    assert not (tmp_path / "data").exists()
