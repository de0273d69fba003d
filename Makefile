# The two commands: `make run` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FLASK  := $(BIN)/flask --app wsgi

.PHONY: run test test-sqlite test-postgresql install migrate clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Development server on 127.0.0.1:5000 with the SQLite default (instance/iam.db).
run: export IAM_ENV = development
run: $(STAMP)
	$(FLASK) db upgrade
	$(FLASK) iam dev-admin
	$(FLASK) run --host 127.0.0.1 --port 5000

migrate: $(STAMP)
	$(FLASK) db upgrade

# The whole suite on SQLite, and on PostgreSQL too when IAM_TEST_DATABASE_URL is set.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
