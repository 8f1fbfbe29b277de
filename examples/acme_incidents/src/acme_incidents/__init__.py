"""acme-incidents: a sample platformdb extension (schema ``acme``, Alembic branch ``acme``)."""

from acme_incidents.models import SCHEMA, Base, Incident, metadata

__all__ = ["SCHEMA", "Base", "Incident", "metadata"]
