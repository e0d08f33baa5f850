# Dockerfile - ONE image for every Switchyard actor, the CLI and the demo backend.
#
#   docker build -t switchyard:local .
#   docker run --rm switchyard:local gateway --help      # the command chooses the program:
#                                                         # gateway, router, balancer, healthd,
#                                                         # statsd, chatd, apid, switchyard,
#                                                         # demo-backend
#
# Two stages on Debian 12 (bookworm-slim):
#   build    the build packages from scripts/deps.sh (the same list `make` checks), then
#            `make build-rel` (the release binaries in bin/)
#   runtime  only the shared libraries the binaries link (readelf -d bin/*: NEEDED) and
#            CA certificates, no compiler, no -dev package, no package lists; a non-root
#            user `switchyard` (uid/gid 10001)
#
# Layout of the runtime image:
#   /usr/local/bin/                    gateway router balancer healthd statsd chatd apid
#                                      switchyard demo-backend
#   /usr/local/share/switchyard/web    the dashboard's files: apid finds share/switchyard/web
#                                      beside its binary's folder (apid/README.md, APID_WEB_DIR)
#   /usr/local/share/switchyard/client the chat page, for demo-backend --static-dir
#   /var/lib/switchyard                working directory, owned by switchyard (the router's
#                                      file store var/state.json, BUS_DIR run/bus when ipc)
#   /keys                              empty, owned by switchyard: a fresh named volume
#                                      mounted here takes that owner (compose.yaml's `keys`)
#
# No HEALTHCHECK here: each service has its own in compose.yaml (and probes in
# deploy/k8s), since what "healthy" means differs per actor. docs/deploy.md has the rest.

FROM debian:bookworm-slim AS build
WORKDIR /src
# deps.sh first, alone, so the package layer is reused while only sources change
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" build-rel

FROM debian:bookworm-slim
# The runtime counterparts of scripts/deps.sh's build packages, as linked:
#   libev4 libzmq5 libc-ares2 libhttp-parser2.9 libjansson4 libssl3 (libcrypto too)
#   libcurl4 (switchyard routes) libpq5 (router) libwslay1 (gateway chat)
#   libhiredis0.14 (chatd, gateway rate limits) libjwt0 (chat tokens)
# msgpack-c is header-only; libc6 and libcrypt1 are in the base image.
# ca-certificates: TLS to an authProvider, PostgreSQL with sslmode=verify-full.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libev4 libzmq5 libc-ares2 libhttp-parser2.9 libjansson4 libssl3 libcurl4 libpq5 \
        libwslay1 libhiredis0.14 libjwt0 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid switchyard --home-dir /var/lib/switchyard \
        --create-home --shell /usr/sbin/nologin switchyard \
    && install -d -o switchyard -g switchyard -m 0700 /keys
COPY --from=build /src/bin/gateway /src/bin/router /src/bin/balancer /src/bin/healthd \
    /src/bin/statsd /src/bin/chatd /src/bin/apid /src/bin/switchyard /src/bin/demo-backend \
    /usr/local/bin/
COPY web/ /usr/local/share/switchyard/web/
COPY client/ /usr/local/share/switchyard/client/
USER switchyard:switchyard
WORKDIR /var/lib/switchyard
# bus (ROUTER, XPUB), public HTTP, HTTPS, admin
EXPOSE 7100 7101 8080 8443 9000
CMD ["switchyard", "--help"]
