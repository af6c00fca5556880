# syntax=docker/dockerfile:1
# The operator image. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t squall/operator:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Generated protobuf code is committed, so no protoc is needed. The cache mounts keep the
# registry and target/ between builds; the binary is copied out of the mounted target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p squall-operator \
    && cp target/release/squall-operator /squall-operator

# Distroless: no shell, no package manager; runs as uid 65532 and writes nothing, so the
# chart's readOnlyRootFilesystem holds.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /squall-operator /usr/local/bin/squall-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/squall-operator"]
CMD ["run"]
