# The API with the PostgreSQL and MariaDB client tools it drives.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client mariadb-client util-linux \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 backup
WORKDIR /app
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY src ./src
RUN pip install --no-cache-dir -c constraints.txt . \
    && mkdir -p /data/backups && chown -R backup:backup /data

USER backup
ENV BACKUP_API_HOST=0.0.0.0 \
    BACKUP_API_PORT=3000 \
    BACKUP_API_BACKUP_ROOT=/data/backups \
    BACKUP_API_SECRETS_DIR=/data/secrets
EXPOSE 3000
VOLUME ["/data"]
# GET /health on the service's own port: 200 healthy; 503 (metadata database unreachable)
# or no answer, unhealthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "backup_api.healthcheck"]
CMD ["backup-api", "serve"]
