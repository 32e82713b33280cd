# The API with the PostgreSQL and MariaDB client tools it drives.
FROM python:3.11-slim-bookworm

# PostgreSQL clients of every supported major version, from the PostgreSQL project's own
# repository (Debian has 15 only): pg_dump refuses servers newer than itself, and each job
# picks the client that fits its server (see the README). They land in
# /usr/lib/postgresql/<major>/bin, where the service looks by default.
ARG PG_CLIENT_MAJORS="13 14 15 16 17 18"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && install -d /usr/share/postgresql-common/pgdg \
    && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc \
    && . /etc/os-release \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends mariadb-client util-linux \
        $(for major in ${PG_CLIENT_MAJORS}; do echo "postgresql-client-${major}"; done) \
    && apt-get purge -y --auto-remove curl \
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
