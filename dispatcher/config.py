"""Configuration: every ``DISPATCHER_*`` variable, typed and validated once at start-up.

Values come from the environment; a TOML file (``DISPATCHER_CONFIG`` or ``--config``) may
mirror them, with keys named like the variables without the prefix, in lower case
(``port = 8080``). The environment wins over the file. A bad value raises
:class:`ConfigError` whose message is one line naming the variable and the problem.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

PREFIX = "DISPATCHER_"


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


def _default_log_format() -> Literal["console", "json"]:
    return "console" if sys.stdout.isatty() else "json"


class Settings(BaseModel):
    """The service's settings. Field names are the variable names without the prefix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str | None = None
    data_dir: Path = Path(".dispatcher")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    admin_token: str | None = Field(None, min_length=16)
    publish_tokens: tuple[str, ...] = ()
    events_enabled: bool = True
    max_payload_bytes: int = Field(524288, ge=1024, le=64 * 1024 * 1024)
    max_batch_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    ingest_memory_bytes: int = Field(32 * 1024 * 1024, ge=1024, le=16 * 1024 * 1024 * 1024)
    max_retries: int = Field(8, ge=0, le=100)
    retry_base_seconds: float = Field(5.0, gt=0, le=86400)
    retry_max_delay_seconds: float = Field(4 * 3600.0, gt=0, le=7 * 86400)
    max_age_seconds: float = Field(864000.0, gt=0)
    delivery_timeout_seconds: float = Field(15.0, gt=0, le=300)
    # Attempts in flight to one webhook from one process: 100 still carries 1,000 deliveries/s
    # to a 100 ms endpoint, and is as many connections as a hung endpoint is ever held open.
    max_in_flight_per_webhook: int = Field(100, ge=1, le=100000)
    # Attempts in flight from one process, all webhooks together: what bounds its memory.
    max_in_flight_per_process: int = Field(7_000, ge=1, le=1_000_000)
    failures_before_disable: int = Field(50, ge=-1)
    failure_window_seconds: float = Field(10.0, gt=0, le=86400)
    allow_private_targets: bool = False
    # The outbound client: pyreqwest costs 0.6x aiohttp's CPU per request; aiohttp is the
    # fallback. Both keep every sending guarantee (dispatcher/sender.py).
    http_client: Literal["pyreqwest", "aiohttp"] = "pyreqwest"
    reload_interval_seconds: float = Field(300.0, gt=0)
    lease_seconds: float = Field(30.0, ge=1, le=3600)
    retention_days: float = Field(30.0, gt=0)
    metrics_per_webhook: bool = False
    secret_grace_seconds: float = Field(86400.0, ge=0)
    log_format: Literal["console", "json"] = Field(default_factory=_default_log_format)
    workers: int = Field(1, ge=1, le=64)
    header_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    body_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    # The base of links Dispatcher hands out (portal links); None: http://HOST:PORT.
    public_url: str | None = None
    # CSP frame-ancestors of the tenant portal: the origins that may embed it.
    portal_frame_ancestors: str = "'self'"

    @field_validator("publish_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @field_validator("publish_tokens")
    @classmethod
    def _token_length(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for token in value:
            if len(token) < 16:
                raise ValueError("each token must be at least 16 characters")
        return value

    @field_validator("failures_before_disable")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be a positive number, or -1 to never disable")
        return value

    # Fields are validated in order, so each of these sees the one it must not be below.
    @field_validator("max_batch_bytes")
    @classmethod
    def _batch_holds_an_event(cls, value: int, info: ValidationInfo) -> int:
        payload = info.data.get("max_payload_bytes")
        if payload is not None and value < payload:
            raise ValueError(f"must be at least DISPATCHER_MAX_PAYLOAD_BYTES ({payload})")
        return value

    @field_validator("ingest_memory_bytes")
    @classmethod
    def _budget_holds_a_batch(cls, value: int, info: ValidationInfo) -> int:
        batch = info.data.get("max_batch_bytes")
        if batch is not None and value < batch:
            raise ValueError(f"must be at least DISPATCHER_MAX_BATCH_BYTES ({batch})")
        return value

    @field_validator("public_url", mode="before")
    @classmethod
    def _public_url(cls, value: Any) -> Any:
        if value == "" or value is None:
            return None
        if not isinstance(value, str):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL such as https://hooks.example.com")
        if parts.query or parts.fragment or any(c <= " " for c in value):
            raise ValueError("must be a plain base URL, without spaces, query or #fragment")
        return value.rstrip("/")

    @field_validator("portal_frame_ancestors")
    @classmethod
    def _frame_ancestors(cls, value: str) -> str:
        # One CSP directive's source list (commas read as spaces): a ; or a control character
        # would end or break the header.
        value = value.replace(",", " ")
        if not value.strip() or any(c == ";" or c < " " or c == "\x7f" for c in value):
            raise ValueError(
                "must be a space-separated list of CSP sources such as 'self' https://app.example.com"
            )
        return " ".join(value.split())

    def public_base_url(self) -> str:
        """``DISPATCHER_PUBLIC_URL``, or ``http://HOST:PORT`` when it is unset."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @field_validator("database_url", "admin_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _dsn_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        return value


def variable_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return PREFIX + field.upper()


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from a TOML file, the environment and explicit overrides.

    Raises :class:`ConfigError` with a one-line message on the first bad value.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get(PREFIX + "CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                from_file = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"DISPATCHER_CONFIG: cannot read {path}: {exc}") from None
        for key, value in from_file.items():
            if key.lower() not in Settings.model_fields:
                raise ConfigError(f"DISPATCHER_CONFIG: unknown setting {key!r} in {path}")
            values[key.lower()] = value
    for field in Settings.model_fields:
        raw = env.get(variable_name(field))
        if raw is not None:
            values[field] = raw
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        shown = variable_name(field) if field in Settings.model_fields else field
        raise ConfigError(f"{shown}: {err['msg']}") from None
