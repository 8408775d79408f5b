"""The alliance service: a multi-tenant HTTP API and web UI over the library.

Partner companies (tenants) upload logs, browse and query the lake, run
jobs, share what they choose with whom they choose, and export scenarios to
Foxglove (MCAP) and Rerun, through one FastAPI app (``datadrive serve``).

The service duplicates no rule. It authenticates a caller (API key or UI
session), maps them to a :class:`~datadrive.lake.Principal` (user, tenant,
home region) and calls the library, which judges residency, tenants and
audit exactly as it does for the CLI. What the service keeps itself is what
the library has no notion of: users, API keys, roles, sessions, jobs, the
catalogue of shareable objects and object-level grants, in a SQLAlchemy
database (SQLite embedded, PostgreSQL in deployments) migrated by Alembic.

May import: every library layer below it (``lake``, ``compute``, ``core``,
``sources``, ``viz``, and ``mining``, ``curate``, ``train``, ``evaluate``,
``sim``, ``assistant`` as they land). Never ``datadrive.cli`` (the CLI is
the edge above it: ``datadrive serve`` builds :class:`ServiceSettings` and
calls :func:`create_app`).

Start with :func:`create_app`; ``docs/service.md`` describes the API, the
jobs, sharing, the UI and operations.
"""

from datadrive.service.app import create_app
from datadrive.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
