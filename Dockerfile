# Relay container image (SPEC S10.8): `docker build -t relay .`
#
# One image for every process; the command picks the role:
#   relay serve                                   embedded: web + scheduler + in-process worker (default)
#   relay serve --migrate --no-worker --no-scheduler   production web
#   relay worker | relay scheduler | relay migrate
# Data (SQLite database, generated secret key, provider files) lives in the volume /var/lib/relay.
FROM python:3.12-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY LICENSE README.md ./
COPY packages/ packages/
RUN python -m venv /opt/relay \
 && /opt/relay/bin/pip install \
      ./packages/relay-core ./packages/relay-adapters ./packages/relay-worker ./packages/relay-server

FROM python:3.12-slim

ARG RELAY_COMMIT=unknown
ENV PATH=/opt/relay/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RELAY_COMMIT=$RELAY_COMMIT \
    RELAY_DATA_DIR=/var/lib/relay \
    RELAY_SERVER__HOST=0.0.0.0 \
    RELAY_SERVER__PORT=8080

RUN groupadd --system --gid 10001 relay \
 && useradd --system --uid 10001 --gid relay --home-dir /var/lib/relay --shell /usr/sbin/nologin relay \
 && mkdir -p /var/lib/relay \
 && chown relay:relay /var/lib/relay
COPY --from=build /opt/relay /opt/relay

USER relay
WORKDIR /var/lib/relay
VOLUME ["/var/lib/relay"]
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["relay"]
CMD ["serve"]
