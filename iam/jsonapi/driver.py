"""Statements built once and run on the driver's own cursor: the per-statement cost taken out.

A few statements run on almost every request with nothing but their parameters changing:
authentication's, a row by id, the rows of an include path for a caller who sees every row.
Executing a Core statement through SQLAlchemy costs about as much CPU as PostgreSQL takes
to answer it: the compiled-cache lookup, the execution context, parameter processing, and a
result whose setup reads the cursor's `description` (psycopg builds a `Column` object per
result column on every execution). A `Prebuilt` statement is compiled once per dialect; on
psycopg it then runs on the connection's DBAPI cursor with its parameters as given, and its
rows are psycopg's tuples. Elsewhere (SQLite) it runs through SQLAlchemy as any statement.

What SQLAlchemy would do on the way is kept:
- the same connection, so the same transaction (or autocommit), timeouts and pool;
- `before_cursor_execute` / `after_cursor_execute` listeners are called (statement counts,
  the reconnect module's "a statement completed");
- a failure is handled by the Connection as its own: wrapped in SQLAlchemy's exception
  classes, and a disconnect invalidates the connection and the pool's older connections
  (`connection_invalidated`, which iam/reconnect.py replays on);
- values are what SQLAlchemy would return: compiling refuses a statement any of whose
  parameters or result columns SQLAlchemy would process on this dialect (a type decorator
  with a bind step, a Python enum...), so the two paths cannot disagree.
"""
_DRIVER = "psycopg"

# SQLAlchemy's own option (the ORM sets it on its statements): a result read by position does
# not rebuild its column map for each new statement object that hits the compiled cache.
ROW_READ = {"_result_disable_adapt_to_context": True}


class Prebuilt:
    """A select built once (per dialect: `build(dialect_name)` returns it), compiled once per
    dialect, and run with `rows(connection, parameters)`."""

    def __init__(self, build):
        self._build = build
        self._statements = {}  # dialect name -> statement
        self._sql = {}         # dialect name -> (compiled SQL, its own parameters' values), psycopg only

    def statement(self, dialect_name):
        statement = self._statements.get(dialect_name)
        if statement is None:
            statement = self._statements[dialect_name] = self._build(dialect_name)
        return statement

    def rows(self, connection, parameters):
        """The rows, as tuples of the selected columns' values."""
        dialect = connection.dialect
        if dialect.driver != _DRIVER:
            return connection.execute(self.statement(dialect.name), parameters, execution_options=ROW_READ).all()
        compiled = self._sql.get(dialect.name)
        if compiled is None:
            compiled = self._sql[dialect.name] = _compile(self.statement(dialect.name), dialect)
        sql, constants = compiled
        return _run(connection, sql, {**constants, **parameters} if constants else parameters)


def _compile(statement, dialect):
    compiled = statement.compile(dialect=dialect)
    for name, bind in compiled.binds.items():
        if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            raise TypeError(f"Prebuilt: parameter {name!r} ({bind.type!r}) needs SQLAlchemy's processing on "
                            f"{dialect.name}; run this statement through the Connection")
    for column in statement.selected_columns:
        if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
            raise TypeError(f"Prebuilt: column {column.key!r} ({column.type!r}) needs SQLAlchemy's processing on "
                            f"{dialect.name}; run this statement through the Connection")
    # The values the statement carries itself (literals bound as parameters), passed with the caller's.
    constants = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
    return compiled.string, constants


def _run(connection, sql, parameters):
    dispatch = connection.dispatch
    cursor = None
    try:
        cursor = connection.connection.dbapi_connection.cursor()
        if dispatch.before_cursor_execute:
            # As SQLAlchemy calls them: a listener may return the statement and parameters to run.
            for listener in dispatch.before_cursor_execute:
                sql, parameters = listener(connection, cursor, sql, parameters, None, False)
        cursor.execute(sql, parameters)
        if dispatch.after_cursor_execute:
            for listener in dispatch.after_cursor_execute:
                listener(connection, cursor, sql, parameters, None, False)
        rows = cursor.fetchall()
    except BaseException as error:
        # The Connection's own handling: wrap, and on a disconnect invalidate (raises).
        connection._handle_dbapi_exception(error, sql, parameters, cursor, None)
    cursor.close()
    return rows
