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
.PHONY: help install lock lint format test test-fast repro run push pull r2 retry demo publish bench bench-quick clean plots \
 shards check-remote fetch-publish worker collect
help:
	@echo "make demo      the whole job offline on sample repos, with a local S3 server standing in for R2"
	@echo "make test / make test-fast   lint and all the tests / the unit tests (tests/unit)"
	@echo "make install   create .venv from uv.lock, with the command .venv/bin/xgov-digests (every target does this)"
	@echo "make lock      refresh uv.lock after a pyproject.toml change (UPGRADE=name: upgrade that package)"
	@echo "The verbs are aliases of the installed command (xgov-digests --help; VERB --help for each):"
	@echo "make -j 10 repro    what dvc repro -j 10 would be: ten shards at once (xgov-digests repro -j 10) / make repro"
	@echo "make run LIMIT=N / make -j 10 run   set feed.limit, repro, stage for git, dvc push, publish to r2"
	@echo "make retry / make shards N=20 / make plots (REV=HEAD~1) / make publish (PRUNE=1|auto, FORCE=1, DRY_RUN=1)"
	@echo "make push / make pull / make check-remote   (REMOTE=name for another remote than the default; VERIFY=1: hash objects)"
	@echo "make fetch-publish / make worker OFFSET=K / make collect (ALLOW_LOCAL=1)   scale-out (docs/scale-out.md)"
	@echo "make r2 R2_ACCOUNT_ID=... R2_BUCKET=...   point the 'r2' remote at your bucket, as the default"
	@echo "make lint / make bench-quick / make bench / make clean (removes demo-workspace/ and dvc_plots/)"
# One venv from the lock (uv.lock: every dependency with its hashes; uv pinned in requirements-uv.txt), a stamp file
# per dependency set: the runtime set is all the verbs and the image need; test, bench and plots extras on demand.
UV := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
# --locked: refuse (naming make lock) when uv.lock does not match pyproject.toml; --inexact: leave uv and pip in;
# --compile-bytecode: every dvc and stage process starts from bytecode even under PYTHONDONTWRITEBYTECODE.
UV_SYNC = $(UV) sync --quiet --locked --inexact --compile-bytecode --python $(BIN)/python
UV_FAILED = { echo "make: installing from uv.lock failed (above); after a pyproject.toml change, run make lock" >&2; exit 2; }

$(UV): requirements-uv.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-uv.txt
	touch $@
$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV_SYNC) || $(UV_FAILED)
	touch $@
$(VENV)/.installed-%: $(VENV)/.installed  # an extra: test, bench or plots
	$(UV_SYNC) --extra $* || $(UV_FAILED)
	touch $@
# uv.lock from pyproject.toml, keeping every pin that still fits (UPGRADE=name: move that package to its newest
# release; UPGRADE=all: every package); requirements-uv.txt from UV_VERSION.
UV_VERSION ?= 0.13.9
lock: $(UV)
	$(UV) lock $(if $(filter all,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))
	echo "uv==$(UV_VERSION)" | $(UV) pip compile - --quiet --universal --generate-hashes\
	 --custom-compile-command "make lock" -o requirements-uv.txt
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes --no-deps -r requirements-uv.txt
install: $(VENV)/.installed
# ruff's linter and its formatter's check; make format rewrites what the check names
CODE := stages xgov_digests tests scripts bench
lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
format: $(VENV)/.installed-test
	$(BIN)/ruff format $(CODE)

# The suite on PYTEST_WORKERS xdist workers (most of a test's time is subprocesses and waits), handed out one at a
# time, slow ones first (tests/conftest.py), so no worker finishes a long run of slow tests alone. test-fast: the
# unit tests (tests/unit: modules on their own, no dvc); make test adds tests/func (the verbs end to end).
PYTEST_WORKERS ?= 4
PYTEST_ARGS ?=
PYTEST = $(BIN)/pytest -n $(PYTEST_WORKERS) --maxschedchunk 1
test: lint
	$(PYTEST) $(PYTEST_ARGS)
test-fast: $(VENV)/.installed-test
	$(PYTEST) tests/unit $(PYTEST_ARGS)

# The verbs, one line each: the installed command (xgov_digests/commands/), not echoed (make -n shows it). GNU make
# puts -jN in MAKEFLAGS: make -j 10 repro passes it on as repro -j 10 and runs as one job (the command runs N shards).
XD = @$(BIN)/xgov-digests
JOBS = $(patsubst -j%,%,$(filter -j%,$(MAKEFLAGS)))
J = $(if $(JOBS),-j $(JOBS))
R = $(if $(REMOTE),-r $(REMOTE))
V = $(if $(VERIFY),--verify $(VERIFY))
repro: install
	$(XD) repro $(J)
run: install
	$(XD) run $(J) --limit $(or $(LIMIT),0) $(R)
retry: install
	$(XD) retry
shards: install
	$(XD) shards $(N)
publish: install
	$(XD) publish $(if $(filter auto,$(PRUNE)),--prune-if-safe,$(if $(PRUNE),--prune)) $(if $(FORCE),--force) $(if $(DRY_RUN),--dry-run)
plots: $(VENV)/.installed-plots
	$(XD) plots $(if $(REV),--rev $(REV)) --out dvc_plots
push: install
	$(XD) push $(R) $(V)
pull: install
	$(XD) pull $(R)
check-remote: install
	$(XD) check-remote $(R) $(V)
fetch-publish: install
	$(XD) fetch-publish $(R)
worker: install
	$(XD) worker $(R) -- $(OFFSET)
collect: install
	$(XD) collect $(R) $(if $(ALLOW_LOCAL),--allow-local)
demo: $(VENV)/.installed-test
	$(BIN)/python -m scripts.demo
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench full
bench-quick: $(VENV)/.installed-bench
	$(BIN)/python -m bench quick
clean:
	rm -rf demo-workspace dvc_plots
r2: install
	$(XD) r2 --account-id "$(R2_ACCOUNT_ID)" --bucket "$(R2_BUCKET)" --prefix "$(or $(R2_PREFIX),dvc)" --endpoint "$(R2_ENDPOINT)"
