"""Settings of the reference services. Built by the caller (CLI, tests), never read at import."""

from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reference.users import check_user_tokens

DEFAULT_DATA_DIR = Path(".sessionlab/data")
# One size limit for a REST body and a WebSocket frame (docs/decisions.md, "Hostile input").
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
# Both classes read SESSIONLAB_<FIELD> and take an empty variable as unset, as `sessionlab serve`
# does for its options: `SESSIONLAB_INTERNAL_KEY=` must not turn into an empty key.


class RuntimeSettings(BaseSettings):
    """The reference Agent Runtime. Environment variables: SESSIONLAB_<FIELD>."""

    model_config = SettingsConfigDict(
        env_prefix="SESSIONLAB_", extra="ignore", env_ignore_empty=True
    )

    data_dir: Path = DEFAULT_DATA_DIR
    # A full SQLAlchemy async URL wins over data_dir, e.g. postgresql+asyncpg://...
    database_url: str | None = None
    internal_key: SecretStr | None = None
    # Strict profile: a stream for an unknown session is refused instead of creating it.
    strict: bool = True
    # Largest request body; larger ones answer 413.
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)
    # A connection whose request head has not fully arrived by then is closed.
    head_timeout: float = Field(default=5.0, gt=0)
    # Open connections at most; more are closed at once (and never past the process's files).
    max_connections: int = Field(default=1000, ge=8)
    # Seconds the stream waits before each frame, as an agent that thinks would: turns that take
    # a while without an LLM, for tests and demonstrations of what happens mid-turn (a stop, a
    # drop). SESSIONLAB_FRAME_DELAY; no option of `serve`.
    frame_delay: float = Field(default=0.0, ge=0, le=60)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sessions.db').resolve()}"


class GatewaySettings(BaseSettings):
    """The reference Gateway. Environment variables: SESSIONLAB_<FIELD>."""

    # Inputs stay out of error messages: a bad `user_tokens` entry would print every token.
    model_config = SettingsConfigDict(
        env_prefix="SESSIONLAB_", extra="ignore", hide_input_in_errors=True, env_ignore_empty=True
    )

    runtime_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8001")
    internal_key: SecretStr | None = None
    client_key: SecretStr | None = None
    connect_timeout: float = Field(default=2.0, gt=0)
    request_timeout: float = Field(default=8.0, gt=0)
    # How long one agent turn may stream before the socket gets an error frame.
    turn_timeout: float = Field(default=60.0, gt=0)
    # Strict profile: a WebSocket for an unknown session is closed with 4404.
    strict: bool = True
    # User auth (X-AUTH-1): token -> user name; empty = off. SESSIONLAB_USER_TOKENS is JSON.
    # Token first so one user may hold several tokens (e.g. while rotating one). Out of the repr,
    # so that logging the settings never shows a token.
    user_tokens: dict[str, str] = Field(default_factory=dict, repr=False)
    # Largest REST body and WebSocket frame: 413 and close 1009 beyond it.
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)
    head_timeout: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=1000, ge=8)
    # Origins whose pages may open a socket or call REST from a browser; a request that carries
    # no Origin (the desktop IDE, any non-browser client) is not affected. Empty: no page may.
    allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("user_tokens")
    @classmethod
    def _usable_tokens(cls, tokens: dict[str, str]) -> dict[str, str]:
        check_user_tokens(tokens)
        return tokens
