# syntax=docker/dockerfile:1
# The worker with Python 3, pystorm, streamparse and msgpack, for topologies with `shell`
# components (the operator's default for them: chart value pythonWorkerImage). Build from
# the repository root:
#   docker build -f docker/worker-python.Dockerfile -t squall/worker-python:0.1.0 .
#
# The Python packages are installed from multilang/python/requirements.txt and
# constraints.txt, the files `make multilang-venv` installs locally, so the image and the
# local venv carry the same pinned versions. `streamparse_run` is on PATH.
#
# Your components: an image built FROM this one that copies them under /app (root-owned,
# read-only to the worker), the working directory a manifest's relative `workingDir`
# resolves against on a cluster, e.g.
#   FROM squall/worker-python:0.1.0
#   COPY examples/wikipedia-edits/python /app/python
# and named in the Topology's spec.pod.image. Extra Python packages go into /opt/venv:
#   RUN ["/opt/venv/bin/pip", "install", "--no-cache-dir", "requests==2.34.2"]
# (switch to USER root for it and back to USER 65532:65532 after).
#
# Read-only root file system: nothing is written at run time but /tmp (an emptyDir in the
# worker pod): the bytecode is compiled at build time and PYTHONDONTWRITEBYTECODE stops
# writes of more, HOME points at /tmp, and the multilang pid files go to /tmp.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p squall-worker \
    && cp target/release/squall-worker /squall-worker

# Python 3.11: the version constraints.txt was resolved on.
FROM python:3.11-slim-bookworm AS venv
COPY multilang/python/requirements.txt multilang/python/constraints.txt /reqs/
# A C compiler in case a pinned package has no wheel for this platform (build stage only).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /reqs/requirements.txt \
    && /opt/venv/bin/python -c "import pystorm, streamparse, redis, msgpack" \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM python:3.11-slim-bookworm
COPY --from=venv /opt/venv /opt/venv
COPY --from=build /squall-worker /usr/local/bin/squall-worker
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /app
USER 65532:65532
# As the squall/worker image: the operator's pods set everything through SQUALL_*
# variables and give /tmp an emptyDir.
ENTRYPOINT ["/usr/local/bin/squall-worker"]
