# syntax=docker/dockerfile:1
#
# The carbonflow engine image: the `carbonflow` binary (release profile) on
# Debian bookworm-slim, run as a non-root user, with ONNX Runtime for
# FORECAST queries. k8s/ deploys it.
#
#   docker build -t carbonflow:0.1.0 .
#   docker run --rm -p 8080:8080 -v "$PWD/queries:/queries:ro" carbonflow:0.1.0 \
#       run /queries/quickstart.sql --listen 0.0.0.0:8080 --auth /queries/tokens.toml
#
# Listening beyond loopback, as a container must, needs a token file (--auth).

# The workspace's rust-version; every locked dependency builds with it.
ARG RUST_VERSION=1.88
# The PyPI wheel the library comes from, as scripts/onnxruntime.sh installs it
# (its minor version must be at least the `api-NN` feature of `ort`).
ARG ONNXRUNTIME_VERSION=1.31.1

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds; the binary is copied
# out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package carbonflow --bin carbonflow \
    && install -D target/release/carbonflow /out/carbonflow

# ONNX Runtime's shared library, taken from the PyPI wheel for the build's
# platform (the engine opens it at run time; nothing else of the wheel is needed).
FROM python:3.11-slim-bookworm AS onnxruntime
ARG ONNXRUNTIME_VERSION
RUN pip download --no-cache-dir --no-deps --only-binary=:all: --dest /tmp/wheel "onnxruntime==${ONNXRUNTIME_VERSION}" \
    && python -m zipfile -e /tmp/wheel/onnxruntime-*.whl /tmp/ort \
    && install -D -t /out /tmp/ort/onnxruntime/capi/libonnxruntime.so.*

FROM debian:bookworm-slim
ARG ONNXRUNTIME_VERSION
# CA certificates: webhook sinks verify their endpoints with the system's roots.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The same ids as the pods' securityContext in k8s/statefulset.yaml.
RUN groupadd --system --gid 10001 carbonflow \
    && useradd --system --uid 10001 --gid carbonflow --no-create-home --home-dir /var/lib/carbonflow --shell /usr/sbin/nologin carbonflow \
    && install -d -o carbonflow -g carbonflow /var/lib/carbonflow
COPY --from=onnxruntime /out/ /opt/onnxruntime/
COPY --from=build /out/carbonflow /usr/local/bin/carbonflow
ENV CARBONFLOW_ONNXRUNTIME=/opt/onnxruntime/libonnxruntime.so.${ONNXRUNTIME_VERSION}
# Relative paths in query files (webhook outboxes, filesystem sinks, the
# dead-letter file) resolve here; k8s/ mounts a persistent volume on it.
WORKDIR /var/lib/carbonflow
USER 10001:10001
# 8080: WebSocket, HTTP API, dashboard and /metrics; 2101: the timely cluster.
EXPOSE 8080 2101
ENTRYPOINT ["carbonflow"]
CMD ["--help"]
