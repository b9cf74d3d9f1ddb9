# xgov-digests. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
# R2 rejects the CRC checksums that botocore >= 1.36 sends by default: only send them when an API requires it.
export AWS_REQUEST_CHECKSUM_CALCULATION ?= when_required
export AWS_RESPONSE_CHECKSUM_VALIDATION ?= when_required
# R2 API tokens may be given as R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY; dvc-s3 and s3fs read the AWS_* names.
ifneq ($(R2_ACCESS_KEY_ID),)
export AWS_ACCESS_KEY_ID ?= $(R2_ACCESS_KEY_ID)
endif
ifneq ($(R2_SECRET_ACCESS_KEY),)
export AWS_SECRET_ACCESS_KEY ?= $(R2_SECRET_ACCESS_KEY)
endif

LIMIT ?=
REMOTE ?=
R2_PREFIX ?= dvc

.PHONY: help install lint test repro run push pull r2 retry demo clean

help:
	@echo "make demo      the whole job offline on sample repos, with a local S3 server standing in for R2"
	@echo "make test      create .venv, install, lint and run the tests"
	@echo "make run       the real feed: dvc repro, then dvc push (LIMIT=N for the first N repos)"
	@echo "make r2 R2_ACCOUNT_ID=... R2_BUCKET=...   point the 'r2' remote at your bucket and make it the default"
	@echo "make push / make pull   dvc push / dvc pull to the default remote (REMOTE=name for another)"
	@echo "make retry     re-run exactly the shards that have failed repos"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check stages tests scripts

test: lint
	$(BIN)/pytest

repro: install
	$(BIN)/dvc repro

define push_outputs
	$(BIN)/python -m stages.s3 check $(REMOTE)
	$(BIN)/dvc push $(if $(REMOTE),-r $(REMOTE))
endef

run: install
ifneq ($(LIMIT),)
	$(BIN)/dvc exp run --set-param feed.limit=$(LIMIT)
else
	$(BIN)/dvc repro
endif
	$(push_outputs)

push: install
	$(push_outputs)

pull: install
	$(BIN)/python -m stages.s3 check $(REMOTE)
	$(BIN)/dvc pull $(if $(REMOTE),-r $(REMOTE))

r2: install
	@test -n "$(R2_ACCOUNT_ID)" || { echo "make r2: set R2_ACCOUNT_ID=<your Cloudflare account id>"; exit 2; }
	@test -n "$(R2_BUCKET)" || { echo "make r2: set R2_BUCKET=<your R2 bucket name>"; exit 2; }
	$(BIN)/dvc remote modify r2 url s3://$(R2_BUCKET)/$(R2_PREFIX)
	$(BIN)/dvc remote modify r2 endpointurl https://$(R2_ACCOUNT_ID).r2.cloudflarestorage.com
	$(BIN)/dvc remote modify r2 region auto
	$(BIN)/dvc remote default r2
	@echo "remote 'r2' -> s3://$(R2_BUCKET)/$(R2_PREFIX) on $(R2_ACCOUNT_ID).r2.cloudflarestorage.com (default)."
	@echo "Set R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY in your environment, then: make push"

retry: install
	@shards="$$($(BIN)/python -m stages.retry)" || exit $$?; \
	if [ -z "$$shards" ]; then echo "no failed repos in data/stats.parquet: nothing to retry"; exit 0; fi; \
	echo "retrying $$shards"; \
	$(BIN)/dvc repro --force --single-item $$shards && $(BIN)/dvc repro --single-item aggregate

demo: install
	$(BIN)/python scripts/demo.py

clean:
	rm -rf demo-workspace
