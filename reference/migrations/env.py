"""Alembic's environment: migrations run on the connection the caller hands over.

`reference.migrations` opens the store's own (async) engine and passes its synchronous face in
`config.attributes["connection"]`, inside the transaction (and, on PostgreSQL, the lock) it
holds: there is no second engine, and no URL in a configuration file.
"""

from alembic import context
from sqlalchemy.engine import Connection

from reference.runtime.tables import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the migrations run through `sessionlab migrate` or `sessionlab serve`, "
        "which hand them a connection"
    )
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
