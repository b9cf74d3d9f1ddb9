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

.PHONY: help install lint test repro run push pull r2 retry demo publish bench bench-quick clean

help:
	@echo "make demo      the whole job offline on sample repos, with a local S3 server standing in for R2"
	@echo "make test      create .venv, install, lint and run the tests"
	@echo "make run       the real feed: dvc repro, then dvc push (LIMIT=N for the first N repos)"
	@echo "make r2 R2_ACCOUNT_ID=... R2_BUCKET=...   point the 'r2' remote at your bucket and make it the default"
	@echo "make push / make pull   dvc push / dvc pull to the default remote (REMOTE=name for another)"
	@echo "make retry     re-run exactly the shards that have failed repos"
	@echo "make bench-quick / make bench   the benchmark against the field's baseline (bench/README.md)"
	@echo "make fetch-publish / make worker OFFSET=K / make collect   shards on several machines (README: Scale out)"
	@echo "make publish   copy the digests to R2 as <prefix>/<owner>/<name>.txt for search consumers (PRUNE=1, DRY_RUN=1)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check stages xgov_digests tests scripts bench

test: lint
	$(BIN)/pytest

repro: install
	$(BIN)/dvc repro

define push_outputs
	$(BIN)/python -m stages.check_remote --write $(REMOTE)
	$(BIN)/dvc push $(if $(REMOTE),-r $(REMOTE))
endef

run: install
ifneq ($(LIMIT),)
	$(BIN)/dvc exp run --set-param feed.limit=$(LIMIT)
else
	$(BIN)/dvc repro
endif
	$(push_outputs)
	@if [ "$$($(BIN)/dvc remote default)" = "r2" ]; then $(BIN)/python -m stages.publish; \
	else echo "default remote is not r2: skipping 'make publish' (see make r2)"; fi

# PRUNE=1: --prune (refused with exit 2 unless the prune guard passes; FORCE=1 overrides); PRUNE=auto: prune only
# when the guard passes, else publish without pruning.
publish: install
	$(BIN)/python -m stages.publish $(if $(filter auto,$(PRUNE)),--prune-if-safe,$(if $(PRUNE),--prune))\
	 $(if $(FORCE),--force) $(if $(DRY_RUN),--dry-run)

push: install
	$(push_outputs)

pull: install
	$(BIN)/python -m stages.check_remote $(REMOTE)
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

bench: install
	$(BIN)/python -m bench full

bench-quick: install
	$(BIN)/python -m bench quick

clean:
	rm -rf demo-workspace

# ---- Scale out ----
# Shards on separate machines, coordinated only through git and the DVC remote (README, "Scale out"):
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
	@changed="$$($(BIN)/python -m stages.scaleout params-changed)" || { echo "make $@: cannot tell whether tracked\
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
	$(BIN)/python -m stages.check_remote --write $(REMOTE)
	$(BIN)/dvc repro --single-item fetch
	$(BIN)/dvc push $(DVC_REMOTE_FLAG) fetch
	$(call scaleout_commit,scale-out: publish feed snapshot,dvc.lock data)
	@echo "fetch-publish: next, git push; then on each worker: git pull && make worker OFFSET=K; then: make collect"

worker: install
	@test -n "$(OFFSET)" || { echo "make worker: set OFFSET=K (or OFFSET=\"K1 K2\"), K from shards.offsets" >&2; exit 2; }
	@$(BIN)/python -m stages.scaleout check-offsets -- $(OFFSET) || exit 2
	$(scaleout_guard)
	$(BIN)/python -m stages.check_remote --write $(REMOTE)
	@set -e; for k in $(OFFSET); do \
	  echo "worker: shard@$$k"; \
	  $(BIN)/dvc pull $(DVC_REMOTE_FLAG) data/manifests/shard-$$k.json; \
	  $(BIN)/dvc repro --allow-missing --single-item shard@$$k; \
	  $(BIN)/dvc push $(DVC_REMOTE_FLAG) --run-cache shard@$$k; \
	done
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
	$(BIN)/python -m stages.check_remote --write $(REMOTE)
	$(BIN)/dvc pull $(DVC_REMOTE_FLAG) fetch
	$(BIN)/python -m stages.scaleout collect $(if $(ALLOW_LOCAL),--allow-local)
	$(BIN)/dvc push $(DVC_REMOTE_FLAG)
	$(call scaleout_commit,scale-out: collect shards,dvc.lock data reports)
	@echo "collect: next, git push"
