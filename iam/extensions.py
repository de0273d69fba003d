"""Extension objects, created unbound here and bound to an app in create_app()."""
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Named constraints keep Alembic migrations deterministic on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))



def autogenerate_filter(dialect_name):
    """Alembic's include_object for a database of `dialect_name`: an index declared for another
    dialect only (`Index(...).ddl_if(dialect="postgresql")`) is not missing there."""
    def include_object(obj, name, type_, reflected, compare_to):
        ddl_if = getattr(obj, "_ddl_if", None)
        if type_ == "index" and not reflected and ddl_if is not None and ddl_if.dialect is not None:
            return ddl_if.dialect == dialect_name
        return True
    return include_object


migrate = Migrate(render_as_batch=True, compare_type=True)
