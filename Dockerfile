# falco-risk container image. Build from the repository root:
#   docker build -t falco-risk:0.1.0 .
# The build stage installs into a virtual environment that the runtime stage copies
# whole, so no installer, compiler or download cache reaches the final image.

ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VENV=/opt/falco-risk

WORKDIR /src

RUN python -m venv "$VENV"

# Dependencies get their own layer, keyed on pyproject.toml only, so that a change to the
# source rebuilds in seconds. The list is read from pyproject.toml to keep one source of truth.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && "$VENV/bin/pip" install --no-cache-dir --requirement requirements.txt

COPY README.md ./
COPY processor/ processor/
RUN "$VENV/bin/pip" install --no-cache-dir --no-deps . \
    && "$VENV/bin/pip" uninstall --yes pip


FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="falco-risk" \
      org.opencontainers.image.description="OTLP sidecar that tags Falco alerts with MITRE ATT&CK and Splunk risk attributes" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric identity, so that Kubernetes can check runAsNonRoot without a passwd lookup.
# The base image's own pip is removed: nothing installs at run time.
RUN groupadd --system --gid 10001 falco-risk \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin falco-risk \
    && python -m pip uninstall --yes --no-cache-dir pip

COPY --from=build /opt/falco-risk /opt/falco-risk

# Bytecode was compiled at install time; the root filesystem may be read-only at run time.
ENV PATH=/opt/falco-risk/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001

# OTLP/gRPC and OTLP/HTTP. falco-risk listens on loopback unless told otherwise: pass
# FALCO_RISK_GRPC_ENDPOINT=0.0.0.0:4317, FALCO_RISK_HTTP_ENDPOINT=0.0.0.0:4318 and either
# TLS settings or FALCO_RISK_ALLOW_INSECURE_LISTEN=true to reach it from outside.
EXPOSE 4317 4318

# For plain Docker; Kubernetes ignores it and the chart probes /healthz and /readyz itself.
# It assumes the default HTTP port 4318.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:4318/healthz', timeout=4)"]

ENTRYPOINT ["falco-risk", "serve"]
