"""SQLAlchemy integration (placeholder, filled in below)."""
from .records import MissingRecord, RecordCache

__all__ = ["RecordCache", "MissingRecord"]
