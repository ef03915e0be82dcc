# Low back pain CDS Hooks service. Build: docker build -t lbp-cds .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY cds_service ./cds_service
RUN pip install --no-cache-dir --upgrade pip && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CDS_DATABASE_URL=sqlite:////var/lib/cds-service/cds-service.db
RUN useradd --system --uid 10001 --home /var/lib/cds-service --create-home cds
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER cds
WORKDIR /var/lib/cds-service
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# `cds-service serve` runs uvicorn with the service's connection limits (cds_service/cli.py):
# request heads complete within CDS_HTTP_HEAD_TIMEOUT_SECONDS (10 s), idle keep-alive connections
# closed after 5 s, 503 once 200 connections are open per worker, request heads over 16 KB refused.
CMD ["cds-service", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
