# The shard worker: `docker run IMAGE --batch-size 10 --offset 3` runs `python -m stages.shard` (docs/scale-out.md).
#
#   docker build -t xgov-digests-worker .
#   docker run --rm xgov-digests-worker --help
#   docker run --rm xgov-digests-worker --batch-size 10 --offset 3 --feed <feed URL> --workers 8   # standalone
#   docker run --rm -u "$(id -u):$(id -g)" -v "$PWD:/work" xgov-digests-worker --batch-size 10 --offset 3
#       # in a DVC workspace: reads data/manifests/shard-3.json, writes data/summaries/shard-3 and data/stats
#
# Credentials (the digest cache on R2) come from the environment at run time (-e R2_ACCESS_KEY_ID -e
# R2_SECRET_ACCESS_KEY), never from the image.
FROM python:3.11-slim-bookworm

# git clones the repositories; nothing else is needed at run time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DVC_NO_ANALYTICS=1 \
    AWS_REQUEST_CHECKSUM_CALCULATION=when_required \
    AWS_RESPONSE_CHECKSUM_VALIDATION=when_required

# The project into the system site-packages, owned by root: read-only for the worker. Its dependencies are the
# runtime set of uv.lock, hash-checked (the same versions as every other machine of a run); uv (pinned with hashes
# in requirements-uv.txt) installs them, compiled (the image never writes bytecode), and is removed again; the project
# itself goes in without resolving anything.
WORKDIR /src
COPY requirements-uv.txt uv.lock pyproject.toml README.md ./
COPY stages ./stages
COPY xgov_digests ./xgov_digests
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-uv.txt \
    && uv export --frozen --no-dev --no-emit-project --quiet -o /tmp/requirements.txt \
    && uv pip install --system --no-cache --compile-bytecode --require-hashes -r /tmp/requirements.txt \
    && pip install --no-cache-dir --no-deps . \
    && pip uninstall --yes uv && rm -rf /src /tmp/requirements.txt

# A non-root user with a fixed uid (match it with `docker run -u` when mounting a workspace). git refuses
# repositories owned by another uid unless marked safe: /work is where a workspace is mounted.
RUN groupadd --gid 10001 worker \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin worker \
    && git config --system --add safe.directory /work
# params.yaml and dvc.yaml, so that the CLI runs as is (--feed); a workspace mounted on /work replaces them.
WORKDIR /work
COPY --chown=10001:10001 dvc.yaml params.yaml ./
RUN chown 10001:10001 /work
USER 10001:10001

ENTRYPOINT ["python", "-m", "stages.shard"]
CMD ["--help"]
