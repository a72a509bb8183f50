"""Storage: the only package that imports SQLAlchemy. Store returns schema types, never ORM rows."""

from mo_explorer.storage.engine import SCHEMA_VERSION, SchemaVersionError
from mo_explorer.storage.exchange import EXPORT_FORMAT, EXPORT_VERSION
from mo_explorer.storage.store import Store

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "SCHEMA_VERSION", "SchemaVersionError", "Store"]
