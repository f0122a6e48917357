"""The storage layer: the only code that speaks SQL.

`Database` owns the SQLite file (migrations, WAL, one writer connection, a read connection per
thread). The area modules (`directory`, `audit`, `catalog`, `exchange`, `events`) hold the
queries as functions of a connection, and `transaction` the write connection's transaction
control. A server database would be a sibling of this package with the same functions; nothing
above this layer sees SQL.
"""

from gateway.storage.database import Database, StorageError

__all__ = ["Database", "StorageError"]
