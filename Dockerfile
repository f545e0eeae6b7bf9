# slabot: the web service (`slabot serve`) by default; `slabot worker` and `slabot db upgrade`
# run from the same image (see compose.yaml).
#
#   docker build -t slabot .
#   docker run --rm -p 8000:8000 -e SLABOT_INTAKE_TOKEN=... \
#     -v "$PWD/examples/agreement.yaml:/etc/slabot/agreement.yaml:ro" slabot
#
# The base image is pinned by its exact version tag. It is not pinned by digest: no registry
# could be reached where this file was written, so no digest was checked. Add
# `@sha256:...` from `docker buildx imagetools inspect python:3.11.14-slim-bookworm` to freeze it.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: the locked dependencies in a venv, and slabot's own wheel ----------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY docker/lock_subset.py docker/
# Only the run-time part of requirements.lock (same versions and hashes; no test or lint tools).
RUN python docker/lock_subset.py requirements.lock pyproject.toml > runtime.lock \
 && python docker/lock_subset.py requirements.lock hatchling > build.lock \
 && python -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-cache-dir --require-hashes -r runtime.lock \
 && python -m venv /opt/build \
 && /opt/build/bin/python -m pip install --no-cache-dir --require-hashes -r build.lock
COPY bot bot
COPY commands commands
COPY sla sla
COPY storage storage
COPY manifests manifests
# The wheel is built with the locked hatchling, then installed without touching the dependencies.
RUN /opt/build/bin/python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/venv/bin/python -m pip install --no-cache-dir --no-deps /wheels/slabot-*.whl

# --- runtime: the venv only, as a user without privileges ------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////data/slabot.db \
    SLABOT_AGREEMENT=/etc/slabot/agreement.yaml
RUN groupadd --system --gid 10001 slabot \
 && useradd --system --uid 10001 --gid slabot --home-dir /data --no-create-home slabot \
 && mkdir -p /data /etc/slabot \
 && chown slabot:slabot /data
COPY --from=builder /opt/venv /opt/venv
WORKDIR /data
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["slabot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
