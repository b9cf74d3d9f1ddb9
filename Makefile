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

.PHONY: help install lock lint test test-fast repro aggregate run push pull r2 retry demo publish bench bench-quick clean plots shards
.PHONY: check-remote

help:
	@echo "make demo      the whole job offline on sample repos, with a local S3 server standing in for R2"
	@echo "make test      install the test extras, lint and run the tests"
	@echo "make test-fast the tests without the slow ones (dvc repro, publish, timeouts): the edit-test loop"
	@echo "make install   create .venv with the runtime dependencies only, from uv.lock (every target does this)"
	@echo "make lock      refresh uv.lock after a pyproject.toml change (UPGRADE=name: upgrade that package)"
	@echo "make run       the real feed: dvc repro, stage the results for git, dvc push (LIMIT=N: the first N repos)"
	@echo "make repro     fetch, the changed shards, aggregate (like dvc repro): no push, nothing staged"
	@echo "make -j 10 repro   what 'dvc repro -j 10' would be (DVC has no -j): ten shards at once (docs/parallel.md)"
	@echo "make -j 10 run     the same for make run"
	@echo "make r2 R2_ACCOUNT_ID=... R2_BUCKET=...   point the 'r2' remote at your bucket, with R2's settings, as the default"
	@echo "                 (then plain dvc push / dvc pull / dvc status -c work, with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
	@echo "make push / make pull   dvc push / dvc pull to the default remote (REMOTE=name for another)"
	@echo "make check-remote   audit that every file of dvc.lock's outputs is on the remote (make push repairs)"
	@echo "make retry     re-run exactly the shards that have failed repos, then stage the results for git"
	@echo "make plots     the DVC plots as dvc_plots/index.html (renders offline) and a PNG each (REV=HEAD~1: diff)"
	@echo "make shards N=20   set shards.batch_size and shards.offsets together, then show what dvc repro will run"
	@echo "make lint      ruff (installs the test extras)"
	@echo "make bench-quick / make bench   the benchmark against the field's baseline (bench/README.md)"
	@echo "make fetch-publish / make worker OFFSET=K / make collect   shards on several machines (docs/scale-out.md)"
	@echo "make publish   copy the digests to R2 as <prefix>/<owner>/<name>.txt for search consumers (PRUNE=1, DRY_RUN=1)"
	@echo "make clean     remove demo-workspace/"

# One venv (python3's own venv module), filled from the lock: uv.lock pins every runtime, test and bench dependency
# with its hashes for Python 3.11-3.13 on Linux x86-64 and arm64, and uv installs exactly that in seconds. uv itself
# is pinned with its hashes in requirements-uv.txt and installed with the venv's pip. A stamp file per dependency
# set: the runtime set (pyproject's dependencies) is all that run, worker and the image need; the test and bench
# extras come only with the targets that use them. `make lock` re-resolves after a pyproject.toml change.
UV := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
# --locked: refuse (and name `make lock`) when uv.lock does not match pyproject.toml; --inexact: leave uv and pip in;
# --compile-bytecode: .pyc files written at install, so that every dvc and stage process starts from bytecode even
# where PYTHONDONTWRITEBYTECODE is set (without them each `dvc` call compiled DVC's sources again: 1.2 s, not 0.55 s).
UV_SYNC = $(UV) sync --quiet --locked --inexact --compile-bytecode --python $(BIN)/python
UV_FAILED = { echo "make: installing from uv.lock failed (above); after a pyproject.toml change, run make lock" >&2; exit 2; }

$(UV): requirements-uv.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-uv.txt
	touch $@

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV_SYNC) || $(UV_FAILED)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(UV_SYNC) --extra test || $(UV_FAILED)
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(UV_SYNC) --extra bench || $(UV_FAILED)
	touch $@

# the plots extra (vl-convert-python: the vega scripts and PNG rendering) only for make plots
$(VENV)/.installed-plots: $(VENV)/.installed
	$(UV_SYNC) --extra plots || $(UV_FAILED)
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

lint: $(VENV)/.installed-test
	$(BIN)/ruff check stages xgov_digests tests scripts bench

# The whole suite (what CI runs) on PYTEST_WORKERS pytest-xdist workers; test-fast leaves out the `slow` tests.
# Most of a test's time is subprocesses (git, dvc) and waits: more workers than the machine's two cores. Tests are
# handed out one at a time (--maxschedchunk 1), slow ones first (tests/conftest.py): xdist's default hands each
# worker a quarter of its share at once, and the worker given the longest run of slow tests finishes alone.
PYTEST_WORKERS ?= 4
PYTEST_ARGS ?=
PYTEST = $(BIN)/pytest -n $(PYTEST_WORKERS) --maxschedchunk 1
test: lint
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-test
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

# `dvc repro -j N` does not exist (DVC issue 755): `make -j N repro` runs up to N shards at once, each its own
# `dvc --wait-for-lock repro --single-item shard@K` (DVC releases its lock while a stage's command runs). fetch runs
# first; then the shards of params.yaml that DVC's status shows changed, then aggregate. Without -j they run one by
# one, like `dvc repro`. A failed shard does not stop the others (-k); make exits non-zero naming it.
# xgov_digests.cli.group, one process between make and each dvc command: checks and repairs dvc.lock and
# .dvc/tmp/rwlock before and after it, turns Ctrl-C / SIGTERM into one SIGINT to it and its stage (dvc passes on
# neither), and (--drop-hints) drops DVC's staging and push hints, which make run acts on and make repro prints once.
DVC_QUIET = $(BIN)/python -m xgov_digests.cli.quiet_dvc -- $(BIN)/dvc
DVC_GROUP = $(BIN)/python -m xgov_digests.cli.group --drop-hints -- $(BIN)/dvc --wait-for-lock
# Before a dvc command outside DVC_GROUP: check and repair dvc.lock and .dvc/tmp/rwlock (docs/reliability.md).
DVC_CHECK = $(BIN)/python -m xgov_digests.cli.group --check

define repro_stages
	$(DVC_GROUP) repro --single-item fetch
	+@stages="$$($(BIN)/python -m xgov_digests.cli.shard_stages --changed)" || exit $$?; \
	if [ -z "$$stages" ]; then echo "no shard and no aggregate changed: nothing more to run"; exit 0; fi; \
	exec $(MAKE) --no-print-directory --keep-going -o $(VENV)/.installed $$stages
endef

repro: install
	$(repro_stages)
	@if [ -n "$$(git status --porcelain -- dvc.lock params.yaml data reports 2>/dev/null)" ]; then\
	 echo "repro: to track the changes with git: git add -A -- dvc.lock params.yaml data reports; then dvc push"\
	 "(make run stages and pushes by itself)"; fi

shard@%: install
	$(DVC_GROUP) repro --single-item $@

# after the shards named on the same command line (make repro names the changed ones)
aggregate: install $(filter shard@%,$(MAKECMDGOALS))
	$(DVC_GROUP) repro --single-item aggregate

# After dvc push: audit that every file of dvc.lock's outputs is on the remote, re-upload what is missing (DVC trusts
# a present .dir object for its whole folder); exit 1 names what is still missing.
define push_outputs
	$(BIN)/python -m xgov_digests.cli.check_remote --write $(REMOTE)
	$(BIN)/dvc push $(if $(REMOTE),-r $(REMOTE))
	$(BIN)/python -m xgov_digests.cli.check_remote --audit --repair $(REMOTE)
endef

# What a run changes for git: dvc.lock, params.yaml, the .gitignore files DVC writes, the metrics and plot data.
define stage_results
	@git add -A -- dvc.lock params.yaml data reports && git status --short -- dvc.lock params.yaml data reports \
	 && echo "$@: the run's files are staged; next: git commit -m 'digests $$(date +%F)' && git push"
endef

run: install
	$(BIN)/python -m xgov_digests.cli.set_params feed.limit=$(or $(LIMIT),0)
	$(repro_stages)
	$(stage_results)
	$(push_outputs)
	@if [ "$$($(BIN)/dvc remote default)" = "r2" ]; then $(BIN)/python -m xgov_digests.cli.publish; \
	else echo "default remote is not r2: skipping 'make publish' (see make r2)"; fi

# PRUNE=1: --prune (refused with exit 2 unless the prune guard passes; FORCE=1 overrides); PRUNE=auto: prune only
# when the guard passes, else publish without pruning.
publish: install
	$(BIN)/python -m xgov_digests.cli.publish $(if $(filter auto,$(PRUNE)),--prune-if-safe,$(if $(PRUNE),--prune))\
	 $(if $(FORCE),--force) $(if $(DRY_RUN),--dry-run)

push: install
	$(push_outputs)

pull: install
	$(BIN)/python -m xgov_digests.cli.check_remote --audit $(REMOTE)
	$(BIN)/dvc pull $(if $(REMOTE),-r $(REMOTE))

# The push audit alone: is every file of dvc.lock's outputs on the remote? (read-only)
check-remote: install
	$(BIN)/python -m xgov_digests.cli.check_remote --audit $(REMOTE)

# The R2 remote for plain dvc as much as for make: dvc-s3 hands the remote's `configpath` to botocore as its AWS config
# file, whose profiles carry R2's checksum settings (no credentials: those stay in the environment, .dvc/config.local
# or an AWS profile). R2_ENDPOINT overrides the account's endpoint (e.g. https://<id>.eu.r2.cloudflarestorage.com).
R2_AWS_CONFIG := .dvc/r2-aws.config
R2_ENDPOINT ?= https://$(R2_ACCOUNT_ID).r2.cloudflarestorage.com
R2_CHECKSUMS := "request_checksum_calculation = when_required" "response_checksum_validation = when_required"

r2: install
	@test -n "$(R2_ACCOUNT_ID)$(filter-out https://.r2.cloudflarestorage.com,$(R2_ENDPOINT))" || { echo "make r2: set R2_ACCOUNT_ID=<your Cloudflare account id>"; exit 2; }
	@test -n "$(R2_BUCKET)" || { echo "make r2: set R2_BUCKET=<your R2 bucket name>"; exit 2; }
	@printf '%s\n' "# AWS config file of the DVC remote 'r2' (its configpath), written by make r2: no credentials here." \
	 "# botocore >= 1.36 sends CRC checksums R2 rejects; these send them only where an API requires one. [default]" \
	 "# serves AWS_* or config.local keys; [profile r2] a remote with profile = r2 (keys in ~/.aws/credentials [r2])." \
	 "[default]" $(R2_CHECKSUMS) "" "[profile r2]" $(R2_CHECKSUMS) > $(R2_AWS_CONFIG)
	$(BIN)/dvc remote modify r2 url s3://$(R2_BUCKET)/$(R2_PREFIX)
	$(BIN)/dvc remote modify r2 endpointurl $(R2_ENDPOINT)
	$(BIN)/dvc remote modify r2 region auto
	$(BIN)/dvc remote modify r2 configpath $(R2_AWS_CONFIG)
	$(BIN)/dvc remote default r2
	@umask 077 && touch .dvc/config.local && chmod 600 .dvc/config.local  # credentials may go here: private
	@git add .dvc/config $(R2_AWS_CONFIG) 2>/dev/null || true
	@echo "remote 'r2' -> s3://$(R2_BUCKET)/$(R2_PREFIX) on $(R2_ENDPOINT) (default; R2's checksum settings in $(R2_AWS_CONFIG); .dvc/config and $(R2_AWS_CONFIG) staged for git)."
	@echo "Credentials as dvc-s3 reads them: export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... (or .dvc/config.local, or an AWS profile); then plain dvc push / dvc pull, or make push"

retry: install
	@shards="$$($(BIN)/python -m xgov_digests.cli.retry)" || exit $$?; \
	if [ -z "$$shards" ]; then echo "no failed repos in data/stats.parquet: nothing to retry"; exit 0; fi; \
	echo "retrying $$shards"; $(DVC_CHECK) || exit $$?; \
	$(DVC_QUIET) repro --force --single-item $$shards && $(DVC_QUIET) repro --single-item aggregate
	$(stage_results)

demo: $(VENV)/.installed-test
	$(BIN)/python -m scripts.demo

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench full

bench-quick: $(VENV)/.installed-bench
	$(BIN)/python -m bench quick

# dvc_plots/index.html with vega inlined (DVC's own page loads it from a CDN: blank offline), and a PNG per plot
plots: $(VENV)/.installed-plots
	$(BIN)/python -m xgov_digests.cli.plots --dvc $(BIN)/dvc $(if $(REV),--rev $(REV)) --out dvc_plots

shards: install
	@test -n "$(N)" || { echo "make shards: set N=<number of shards>, e.g. make shards N=20" >&2; exit 2; }
	$(BIN)/python -m xgov_digests.cli.set_shards $(N)

clean:
	rm -rf demo-workspace dvc_plots

# ---- Scale out ----
# Shards on separate machines, coordinated only through git and the DVC remote (docs/scale-out.md):
#   coordinator:  make fetch-publish                   then git push
#   each worker:  git pull && make worker OFFSET=K      (OFFSET="1 3" for several shards)
#   coordinator:  git pull && make collect              then git push
# Workers commit nothing: they leave each shard's result in the remote's run-cache, where the coordinator's
# 'dvc repro --pull' finds it ("Stage 'shard@K' is cached - skipping run") and runs only aggregate.
# 'fetch' is always_changed: only fetch-publish may run it. worker and collect name their stages with --single-item,
# so no other machine fetches a newer feed (which would change manifests and miss the run-cache).
OFFSET ?=
DVC_REMOTE_FLAG = $(if $(REMOTE),-r $(REMOTE))

.PHONY: fetch-publish worker collect

# Code and tracked params are part of every shard's run-cache key: all machines must run the committed ones.
define scaleout_guard
	@git diff --quiet HEAD -- stages xgov_digests dvc.yaml || { echo "make $@: stages/, xgov_digests/ or dvc.yaml differ from the last commit;\
	 every machine must run the committed code (commit and git push first)" >&2; exit 2; }
	@changed="$$($(BIN)/python -m xgov_digests.cli.scaleout params-changed)" || { echo "make $@: cannot tell whether tracked\
	 params differ from the last commit (see above): refusing" >&2; exit 2; }; \
	test -z "$$changed" || { echo "make $@: tracked params differ from\
	 the last commit ($$changed); every machine must run the committed ones (commit and git push first)" >&2; exit 2; }
endef

# Commit exactly what DVC writes for git under the given paths ($(2)): dvc.lock, .gitignore files, metrics.json.
define scaleout_commit
	git add -A -- $(2)
	@if git diff --cached --quiet -- $(2); then echo "$@: nothing new to commit"; \
	else git commit -q -m "$(1)" -- $(2) && git log -1 --format='$@: committed %h %s'; fi
endef

fetch-publish: install
	$(scaleout_guard)
	$(BIN)/python -m xgov_digests.cli.check_remote --write $(REMOTE)
	$(BIN)/dvc repro --single-item fetch
	$(BIN)/dvc push $(DVC_REMOTE_FLAG) fetch
	$(call scaleout_commit,scale-out: publish feed snapshot,dvc.lock data)
	@echo "fetch-publish: next, git push; then on each worker: git pull && make worker OFFSET=K; then: make collect"

worker: install
	@test -n "$(OFFSET)" || { echo "make worker: set OFFSET=K (or OFFSET=\"K1 K2\"), K from shards.offsets" >&2; exit 2; }
	@$(BIN)/python -m xgov_digests.cli.scaleout check-offsets -- $(OFFSET) || exit 2
	$(scaleout_guard)
	$(DVC_CHECK)
	$(BIN)/python -m xgov_digests.cli.check_remote --write $(REMOTE)
	@set -e; for k in $(OFFSET); do \
	  echo "worker: shard@$$k"; \
	  $(BIN)/dvc pull $(DVC_REMOTE_FLAG) data/manifests/shard-$$k.json; \
	  $(BIN)/dvc repro --allow-missing --single-item shard@$$k; \
	  $(BIN)/dvc push $(DVC_REMOTE_FLAG) --run-cache shard@$$k; \
	done
	$(BIN)/python -m xgov_digests.cli.check_remote --audit --repair $(REMOTE)
	@echo "worker: shard(s) $(OFFSET) are in the remote's run-cache. This clone's dvc.lock and .gitignore files"\
	 "now hold worker-only entries: never commit them (before the next git pull:"\
	 "git restore dvc.lock data && git clean -fq data)"

collect: install
	$(scaleout_guard)
	@default="$$($(BIN)/dvc remote default 2>/dev/null)"; \
	if [ -n "$(REMOTE)" ] && [ "$(REMOTE)" != "$$default" ]; then \
	  echo "make collect: REMOTE=$(REMOTE) is not the default remote ($${default:-none}); 'dvc repro --pull', which"\
	   "restores the workers' shards, reads only the default remote: run 'dvc remote default --local $(REMOTE)'"\
	   "(or make r2), then make collect again" >&2; exit 2; fi
	$(DVC_CHECK)
	$(BIN)/python -m xgov_digests.cli.check_remote --write $(REMOTE)
	$(BIN)/dvc pull $(DVC_REMOTE_FLAG) fetch
	$(BIN)/python -m xgov_digests.cli.scaleout collect $(if $(ALLOW_LOCAL),--allow-local)
	$(BIN)/dvc push $(DVC_REMOTE_FLAG)
	$(BIN)/python -m xgov_digests.cli.check_remote --audit --repair $(REMOTE)
	$(call scaleout_commit,scale-out: collect shards,dvc.lock data reports)
	@echo "collect: next, git push"
