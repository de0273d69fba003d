"""A throwaway application on the JSON:API engine alone: two models, two resources, no IAM.

Widgets carry a column of every kind the engine types (string, enum, integer, boolean,
timestamp, date, JSON object, JSON array, a nullable string); parts point at a widget.
The application runs on a SQLite file and, when IAM_TEST_DATABASE_URL is set, on
PostgreSQL in a schema of its own (`iam_engine_test`), so the suite's tables are never
touched. Rows are deleted after every test.
"""
import json
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from flask import Blueprint, Flask
from flask_sqlalchemy import SQLAlchemy
from marshmallow import fields as ma_fields, validate
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import mapped_column, relationship

from iam.jsonapi import Api, Resource, register_error_handlers
from iam.jsonapi.jsonsql import canonical_json
from iam.jsonapi.schema import Bool, Int, JsonApiSchema, JsonObject, Rel, Str, Timestamp
from iam.models.types import UTCDateTime  # generic: aware UTC timestamps on both databases
from tests.conftest import DATABASES, PG_URL, wipe_postgresql
from tests.helpers import delete_all_rows

PREFIX = "/engine"
JSONAPI = "application/vnd.api+json"
PG_SCHEMA = "iam_engine_test"
COLORS = ("red", "green", "blue")
JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")

db = SQLAlchemy()


class Widget(db.Model):
    __tablename__ = "engine_widgets"

    id = mapped_column(sa.Integer, primary_key=True)
    version = mapped_column(sa.Integer, nullable=False, default=1)
    name = mapped_column(sa.String(100), nullable=False)
    nickname = mapped_column(sa.String(100), nullable=True)
    color = mapped_column(sa.String(20), nullable=False)
    size = mapped_column(sa.Integer, nullable=False)
    active = mapped_column(sa.Boolean, nullable=False, default=True)
    made_at = mapped_column(UTCDateTime, nullable=False)
    due_on = mapped_column(sa.Date, nullable=True)
    specs = mapped_column(JSON_TYPE, nullable=True)
    tags = mapped_column(JSON_TYPE, nullable=False, default=list)

    parts = relationship("Part", back_populates="widget", passive_deletes="all")

    __mapper_args__ = {"version_id_col": version}


class Part(db.Model):
    __tablename__ = "engine_parts"

    id = mapped_column(sa.Integer, primary_key=True)
    version = mapped_column(sa.Integer, nullable=False, default=1)
    label = mapped_column(sa.String(100), nullable=False)
    widget_id = mapped_column(sa.ForeignKey("engine_widgets.id"), nullable=True)

    widget = relationship("Widget", back_populates="parts")

    __mapper_args__ = {"version_id_col": version}


class WidgetSchema(JsonApiSchema):
    class Meta:
        type_ = "widgets"

    name = Str(required=True, max_length=100)
    nickname = Str(allow_none=True, max_length=100)
    color = Str(required=True, validate=validate.OneOf(COLORS))
    size = Int(required=True)
    active = Bool()
    made_at = Timestamp(required=True)
    due_on = ma_fields.Date(allow_none=True)
    specs = JsonObject(allow_none=True)
    tags = ma_fields.List(Str(max_length=50))

    parts = Rel("parts", many=True)


class PartSchema(JsonApiSchema):
    class Meta:
        type_ = "parts"

    label = Str(required=True, max_length=100)
    widget_id = Int(allow_none=True)

    widget = Rel("widgets", fk="widget_id")


class Widgets(Resource):
    type = "widgets"
    aliases = ("engine/widgets",)
    model = Widget
    schema = WidgetSchema


class Parts(Resource):
    type = "parts"
    model = Part
    schema = PartSchema


def make_app(url):
    """The whole application: one blueprint, the engine's Api with its allow-all policy."""
    app = Flask("engine_test")
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=url,
        # The engine compares JSON objects as canonical text on SQLite (jsonsql.equals).
        SQLALCHEMY_ENGINE_OPTIONS={"json_serializer": canonical_json},
        PROPAGATE_UNEXPECTED_ERRORS=True,  # a 500 fails the test with its traceback
    )
    db.init_app(app)
    blueprint = Blueprint("engine", __name__, url_prefix=PREFIX)
    api = Api(blueprint, db)
    api.register(Widgets)
    api.register(Parts)
    app.register_blueprint(blueprint)
    register_error_handlers(app)
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture(scope="session", params=DATABASES)
def engine_app(request, tmp_path_factory):
    if request.param == "sqlite":
        url = "sqlite:///" + str(tmp_path_factory.mktemp("engine") / "engine.db")
    else:
        wipe_postgresql(PG_URL, PG_SCHEMA)
        url = (PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
               + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{PG_SCHEMA}")
    app = make_app(url)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if request.param == "postgresql":
        wipe_postgresql(PG_URL, PG_SCHEMA)


@pytest.fixture(autouse=True)
def _clean_engine_tables(request):
    yield
    if "engine_app" not in request.fixturenames:
        return
    app = request.getfixturevalue("engine_app")
    with app.app_context():
        delete_all_rows(db)


@pytest.fixture
def dialect(engine_app):
    with engine_app.app_context():
        return db.engine.dialect.name


class Client:
    """Flask's test client speaking JSON:API under PREFIX."""

    def __init__(self, app):
        self.client = app.test_client()

    @staticmethod
    def _headers(extra, body):
        headers = {"Accept": JSONAPI}
        if body:
            headers["Content-Type"] = JSONAPI
        headers.update(extra or {})
        return headers

    def get(self, path, params=None, headers=None):
        return self.client.get(PREFIX + path, query_string=params, headers=self._headers(headers, False))

    def post(self, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        return self.client.post(PREFIX + path, data=data, headers=self._headers(headers, data is not None))

    def patch(self, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(body)
        return self.client.patch(PREFIX + path, data=data, headers=self._headers(headers, True))

    def delete(self, path, headers=None):
        return self.client.delete(PREFIX + path, headers=self._headers(headers, False))


@pytest.fixture
def client(engine_app):
    return Client(engine_app)


class Seed:
    """Rows written straight through the models (committed); returns their ids."""

    def __init__(self, app):
        self.app = app

    def widget(self, **kw):
        kw.setdefault("name", "widget")
        kw.setdefault("color", "red")
        kw.setdefault("size", 1)
        kw.setdefault("made_at", datetime(2026, 1, 1, tzinfo=timezone.utc))
        return self._save(Widget(**kw))

    def part(self, label, widget_id=None):
        return self._save(Part(label=label, widget_id=widget_id))

    def _save(self, obj):
        with self.app.app_context():
            db.session.add(obj)
            db.session.commit()
            id_ = obj.id
            db.session.remove()
        return id_


@pytest.fixture
def seed(engine_app):
    return Seed(engine_app)


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


# Four widgets whose columns tell every operator apart; `specs` of D is never set (SQL NULL).
WIDGET_ROWS = {
    "A": dict(name="Alpha 100% Cotton", nickname="ace", color="red", size=-5, active=True,
              made_at=utc(2026, 1, 1, 10), due_on=date(2026, 3, 1),
              specs={"dims": {"w": 2, "h": 3}, "ports": ["usb", "hdmi"], "ok": True}, tags=["a", "b", "c"]),
    "B": dict(name="beta 1000 cotton", nickname=None, color="green", size=0, active=False,
              made_at=utc(2026, 1, 1, 12, 0, 0, 123456), due_on=date(2026, 3, 15),
              specs={"dims": {"w": 2}, "ports": ["usb"]}, tags=["b"]),
    "C": dict(name="gamma snake_case", nickname="gee", color="blue", size=7, active=True,
              made_at=utc(2026, 1, 2), due_on=None, specs={}, tags=[]),
    "D": dict(name="delta snakeXcase", nickname="zed", color="red", size=2 ** 31 - 1, active=False,
              made_at=utc(2025, 12, 31, 23, 59, 59, 999999), due_on=date(2026, 2, 28), tags=["a, b"]),
}


@pytest.fixture
def widgets(seed):
    """The four WIDGET_ROWS, inserted in order A, B, C, D (so their ids ascend): key -> id."""
    return {key: seed.widget(**row) for key, row in WIDGET_ROWS.items()}
