# Low back pain CDS Hooks service. Build: docker build -t lbp-cds .
# The base image is pinned by digest (the tag is kept for humans): python:3.11-slim, the
# multi-architecture index published in July 2026 (3.11.15-slim-trixie). To move to a newer one,
# read the current digest with `docker buildx imagetools inspect python:3.11-slim` and replace it
# in both FROM lines.
FROM python:3.11-slim@sha256:e031123e3d85762b141ad1cbc56452ba69c6e722ebf2f042cc0dc86c47c0d8b3 AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY cds_service ./cds_service
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim@sha256:e031123e3d85762b141ad1cbc56452ba69c6e722ebf2f042cc0dc86c47c0d8b3
# The default SQLite database lives in the data directory (the cds user's home).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CDS_DATA_DIR=/var/lib/cds-service
RUN useradd --system --uid 10001 --home /var/lib/cds-service --create-home cds
# Dependencies from the runtime lock only (exact versions, hash-checked), then the service itself.
COPY requirements/runtime.txt /tmp/runtime.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/runtime.txt && rm /tmp/runtime.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
USER cds
WORKDIR /var/lib/cds-service
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# `cds-service serve` runs uvicorn with the service's connection limits (cds_service/cli.py):
# request heads complete within CDS_HTTP_HEAD_TIMEOUT_SECONDS (10 s), idle keep-alive connections
# closed after 5 s, 503 once 200 connections are open per worker, request heads over 16 KB refused.
CMD ["cds-service", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
