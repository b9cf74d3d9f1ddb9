# xgov-digests: every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: help install test lint repro clean

help:
	@echo "make test      create .venv, install, lint and run the tests"
	@echo "make repro     dvc repro: fetch the feed, digest 10 shards, aggregate"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check stages tests

test: install lint
	$(BIN)/pytest

repro: install
	$(BIN)/dvc repro
