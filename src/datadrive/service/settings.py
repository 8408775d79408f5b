"""The service's settings: one frozen dataclass, built at the edge (``datadrive serve``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the service needs to know, decided at start-up.

    Attributes:
        lake: The lake: a folder holding ``datadrive.toml`` (or the file).
        database_url: SQLAlchemy URL of the metadata database
            (``sqlite:///...`` or ``postgresql+psycopg://...``). Default: a
            SQLite file ``service.db`` in ``data_dir``.
        data_dir: Where uploads are staged and job scratch space lives.
        env: Environment variables the lake config may name (tenant keys via
            ``key_env``); passed explicitly, never read from ``os.environ`` here.
        max_body_bytes: Largest request body other than an upload.
        max_upload_bytes: Largest upload.
        max_archive_members: Most members an uploaded archive may hold.
        max_unpacked_bytes: Most bytes an uploaded archive may unpack to.
        max_compression_ratio: Largest unpacked/packed ratio of an archive (zip bombs).
        rate_limit_per_minute: Requests one API key (or one client address,
            before it signs in) may make per minute; 0 turns the limit off.
        rate_limit_burst: Requests admitted at once on top of the steady rate.
        cors_origins: Origins allowed to call the API from a browser. Empty
            (the default): CORS is off, only same-origin pages call it.
        sql_timeout_s: Time limit of one SQL query.
        sql_max_rows: Rows returned by one SQL query at most.
        workers: Jobs run at once by the local worker pool.
        ray_address: The Ray dashboard address (``http://127.0.0.1:8265``);
            when set, jobs run as Ray Jobs on that cluster instead.
        ray_python: The Python executable the cluster runs a job with (it
            must have datadrive installed).
        job_max_attempts: Times a job is started at most (restarts included).
        session_ttl_s: How long a UI sign-in lasts.
        secure_cookies: Mark cookies ``Secure`` (behind HTTPS; off for plain
            loopback HTTP).
        start_workers: Start the job dispatcher with the app (tests turn it
            off to drive it by hand).
        snapshot_ttl_s: How long a kept lake snapshot is reused before the
            service looks for a newer lake version (one file check; 0, the
            default: before every read, so a commit is visible to the next).
        kept_answers_mb: Memory for whole answers of paged listings (a type's
            events, ordered), kept per lake version so a page is a slice of
            them (the least recently used dropped first); 0 keeps none, and
            every page is its own query.
        maps_dir: The fleet-map catalogue: map files (Lanelet2 ``.osm``, ...)
            fleet jobs may draw on, named by file name. None: no fleet jobs.
        max_sim_scenarios: Scenarios one simulate job may cover at most.
        max_mine_scenarios: Scenarios one mining search answered in the request
            may evaluate at most (after the state index narrows them); larger
            searches run as ``mine`` jobs.
    """

    lake: Path
    data_dir: Path
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 512 << 20
    max_archive_members: int = 10_000
    max_unpacked_bytes: int = 4 << 30
    max_compression_ratio: float = 200.0
    rate_limit_per_minute: int = 1200
    rate_limit_burst: int = 200
    cors_origins: tuple[str, ...] = ()
    sql_timeout_s: float = 10.0
    sql_max_rows: int = 10_000
    workers: int = 2
    ray_address: str | None = None
    ray_python: str = "python"
    job_max_attempts: int = 2
    session_ttl_s: int = 12 * 3600
    secure_cookies: bool = False
    start_workers: bool = True
    snapshot_ttl_s: float = 0.0
    kept_answers_mb: int = 512
    maps_dir: Path | None = None
    max_sim_scenarios: int = 2_000
    max_mine_scenarios: int = 500

    @property
    def db_url(self) -> str:
        """The metadata database's URL (the SQLite default spelled out)."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'service.db').resolve()}"
