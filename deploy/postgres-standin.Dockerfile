# Offline stand-in for the postgres image (deploy/compose.offline.yml): Debian's PostgreSQL 15,
# initialised on first start like the official image (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB).
ARG BASE=quantcraft/bookworm:minbase
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres /var/lib/postgresql/data
COPY deploy/postgres-standin.sh /usr/local/bin/postgres-standin
USER postgres
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin PGDATA=/var/lib/postgresql/data
CMD ["postgres-standin"]
