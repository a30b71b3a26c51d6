"""Settings from the environment (prefix FORDRING_), checked at start so a bad value fails fast."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(SystemExit):
    """A configuration problem, reported with the variable's name; exits the process."""


class CommonSettings(BaseSettings):
    """What every service needs. A service subclasses it for its own settings."""

    model_config = SettingsConfigDict(env_prefix="FORDRING_", extra="ignore", frozen=True)

    service_name: str = "fordring"
    environment: Literal["embedded", "test", "production"] = "embedded"
    # Kafka bootstrap servers, comma separated.
    kafka_bootstrap: str = "127.0.0.1:19092"
    # How long the Kafka client waits for the broker's answer (and a record for its acknowledgement);
    # consumers use it for joining their group too, which can take seconds.
    kafka_request_timeout_ms: int = Field(default=30_000, ge=1_000)
    # A consumer group member that sends no heartbeat for the session timeout loses its partitions;
    # heartbeats go out at the interval. The embedded broker holds every group join for half the
    # session timeout, so the tests shorten it (a replica restarted after a crash also waits for it).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # Prepended to every topic and consumer group: isolates tests and environments sharing a cluster.
    topic_prefix: str = ""
    # MongoDB connection string. retryWrites=false suits the embedded server; production may drop it.
    mongo_uri: str = "mongodb://127.0.0.1:27018/?retryWrites=false&directConnection=true"
    # The service's own database.
    mongo_database: str = "fordring"
    grpc_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    # /healthz, /readyz and /metrics.
    http_host: str = "0.0.0.0"  # noqa: S104
    http_port: int = Field(default=8081, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Seconds a SIGTERM waits for in-flight calls and messages.
    shutdown_grace: float = Field(default=10.0, ge=0)
    # The credential Fordring's services present to each other (`authorization: Service <token>`);
    # a secret shared by the services of one deployment. Empty: no service may call this one.
    service_token: str = Field(default="", repr=False)
    # Console: "json" (production) or "text" (a person at a terminal).
    log_format: Literal["json", "text"] = "json"
    # The outbox relay: how long it sleeps when there is nothing to publish, and how much it takes at once.
    outbox_poll_seconds: float = Field(default=0.25, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    # A record Kafka refuses this many times while it takes others is parked for an operator.
    outbox_max_attempts: int = Field(default=8, ge=1)
    # Seconds Kafka has to acknowledge a record before the attempt counts as failed.
    outbox_send_timeout: float = Field(default=10.0, gt=0)
    # Errors that may pass (timeouts, a missing partition leader) park a record only after this long.
    outbox_park_after_seconds: float = Field(default=900.0, ge=0)
    # Sent events are kept this long, to be published again if the broker loses its log.
    outbox_retention_hours: float = Field(default=168.0, gt=0)
    # What is published again by itself when the broker's cluster id changes (at most the retention).
    outbox_replay_hours: float = Field(default=24.0, ge=0)
    # /readyz reports the relay stuck after it could not publish for this long.
    outbox_stuck_seconds: float = Field(default=30.0, gt=0)
    # How long a consumer remembers the event ids it applied (longer than any redelivery or replay).
    processed_retention_days: float = Field(default=30.0, gt=0)
    # A sandbox clock: "now" is the real time plus an offset that `fordring sandbox clock advance`
    # moves forward for every service of the stack at once (`fordring up` turns it on). Never in production.
    sandbox_clock: bool = False
    # Where that offset is kept: a database on the stack's MongoDB server that all its services read.
    sandbox_clock_database: str = "fordring_sandbox"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @model_validator(mode="after")
    def _replay_within_retention(self) -> CommonSettings:
        if self.outbox_replay_hours > self.outbox_retention_hours:
            raise ValueError(
                "outbox_replay_hours must not exceed outbox_retention_hours "
                "(only kept events can be replayed)"
            )
        if self.processed_retention_days * 24 < self.outbox_retention_hours:
            raise ValueError(
                "processed_retention_days must cover outbox_retention_hours: a replayed event must still "
                "be recognised as applied"
            )
        if self.kafka_heartbeat_interval_ms >= self.kafka_session_timeout_ms:
            raise ValueError("kafka_heartbeat_interval_ms must be shorter than kafka_session_timeout_ms")
        if self.sandbox_clock and self.environment == "production":
            raise ValueError(
                "FORDRING_SANDBOX_CLOCK must not be on when FORDRING_ENVIRONMENT=production "
                "(it lets anyone who can write the database move the services' time)"
            )
        return self

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S]) -> S:
    """Build settings or exit with one line per bad variable, naming it."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = "\n".join(
            f"  {prefix}{str(err['loc'][0]).upper()}: {err['msg']}" if err["loc"] else f"  {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"Bad configuration:\n{problems}") from None
