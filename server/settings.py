"""Server settings, built once at start-up from the command line and passed inward."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from server.validation import Limits
from trustkit.expiry import ExpiryPolicy

__all__ = ["GZIP_DEFAULT", "GZIP_ENV", "ServerSettings"]

GZIP_ENV = "TRUSTKIT_SERVER_GZIP"  # "1" (default): compress metadata; "0": never
GZIP_DEFAULT = "1"


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path
    master_key_file: Path
    expiry: ExpiryPolicy = field(default_factory=ExpiryPolicy)
    limits: Limits = field(default_factory=Limits)
    max_upload_bytes: int = 64 * 1024 * 1024
    body_timeout: float = 60.0  # seconds a request body may take to arrive
    require_auth: bool = True  # writes need a token whose scope covers the repository
    open_reads: bool = True  # reads need no token (else a pull scope)
    admin_token_file: Path | None = None  # e.g. /run/secrets/trustkit_admin_token
    tls_cert: Path | None = None
    tls_key: Path | None = None
    database_url: str | None = field(default=None, repr=False)  # PostgreSQL; None: SQLite
    gzip: bool = GZIP_DEFAULT == "1"  # compress large metadata for clients that take gzip

    @property
    def database_path(self) -> Path:
        return self.data_dir / "trustkit.db"

    @property
    def refresh_interval(self) -> float:
        """How often the background task looks for online roles due for renewal."""
        quarter: timedelta = self.expiry.lifetime("timestamp") / 4
        return max(1.0, min(3600.0, quarter.total_seconds()))
