# trustkit-server: the metadata server as a small, non-root, read-only-friendly image.
# Operator guide: docs/deployment.md. Start it with: docker compose up -d --build
#
# Both stages use the same base image, pinned by digest so that a rebuild gets these
# exact bytes and not whatever the tag points to that day. How to check and refresh
# the pin, or build on a mirrored copy (--build-arg BASE_IMAGE=…): docs/deployment.md,
# "The base image pin".
#   python:3.11-slim-bookworm (CPython 3.11.16, Debian 12)
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:528257d48c1da0dcecc2e725d1ae34498d60c965f1241e39cd6a85a8859bdf84

# --- builder: a wheel from this source tree, installed with its dependencies into a venv
FROM ${BASE_IMAGE} AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# Only what the wheel is built from (the packages pyproject.toml lists, and the readme
# it names); .dockerignore keeps secrets, keystores, caches and .git out of the context.
COPY pyproject.toml README.md ./
COPY trustkit ./trustkit
COPY keys ./keys
COPY client ./client
COPY server ./server
COPY migrate ./migrate

# The server's stack is the wheel's "server" extra (app hosts install without it).
RUN python -m venv /opt/trustkit \
    && /opt/trustkit/bin/python -m pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/trustkit/bin/python -m pip install "$(ls /wheels/trustkit_tuf-*.whl)[server]" \
    && /opt/trustkit/bin/python -m pip uninstall --yes pip setuptools \
    && /opt/trustkit/bin/trustkit-server --version

# --- runtime: the base image, one unprivileged user and the venv; nothing else (and
# no pip: removed where the base image has one)
FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="trustkit-server" \
      org.opencontainers.image.description="trustkit metadata server (content trust for container images)" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/trustkit/bin:$PATH \
    TRUSTKIT_SERVER_DATA=/var/lib/trustkit

# A fixed UID/GID, so that file ownership on the volume and on the secrets is
# predictable on every host (docs/deployment.md). No pip in the running image.
RUN groupadd --gid 10001 trustkit \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin trustkit \
    && install --directory --owner=10001 --group=10001 --mode=0700 /var/lib/trustkit \
    && if python -m pip --version >/dev/null 2>&1; then \
           python -m pip uninstall --yes pip setuptools wheel; fi

COPY --from=builder /opt/trustkit /opt/trustkit

USER 10001:10001
WORKDIR /var/lib/trustkit
VOLUME ["/var/lib/trustkit"]
EXPOSE 4443

# Liveness over the same TLS the clients use. There is no curl in a slim image, so
# Python's urllib. The only trust anchor is the mounted server certificate (no system
# CAs, no unverified context); the host name is not checked because the probe dials
# 127.0.0.1 while the certificate names the server's public name.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import json,ssl,sys,urllib.request as u;c=ssl.create_default_context(cafile='/run/secrets/trustkit_tls_cert');c.check_hostname=False;c.verify_flags|=ssl.VERIFY_X509_PARTIAL_CHAIN;sys.exit(json.load(u.urlopen('https://127.0.0.1:4443/_trustkit/health',context=c,timeout=4))['status']!='ok')"]

ENTRYPOINT ["trustkit-server"]
CMD ["--host", "0.0.0.0", "--port", "4443", \
     "--data-dir", "/var/lib/trustkit", \
     "--master-key-file", "/run/secrets/trustkit_master_key", \
     "--admin-token-file", "/run/secrets/trustkit_admin_token", \
     "--tls-cert", "/run/secrets/trustkit_tls_cert", \
     "--tls-key", "/run/secrets/trustkit_tls_key"]
