# syntax=docker/dockerfile:1
# The worker image. Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t squall/worker:0.1.0 .
# Built-in components only: topologies with Python `shell` components run on
# squall/worker-python (worker-python.Dockerfile).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p squall-worker \
    && cp target/release/squall-worker /squall-worker

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /squall-worker /usr/local/bin/squall-worker
USER 65532:65532
# The operator's pods set everything through SQUALL_* variables and give /tmp an emptyDir
# (the assignment files), so the root file system can stay read-only.
ENTRYPOINT ["/usr/local/bin/squall-worker"]
