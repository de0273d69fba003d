"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi run`."""
from iam import create_app

app = create_app()
