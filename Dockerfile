# source-sendgrid as an Airbyte connector image.
#   docker build -t source-sendgrid:dev .
#   docker run --rm source-sendgrid:dev spec
# Two stages: the builder makes a wheel of the package and installs it with its dependencies into a
# virtual environment; the runtime stage gets that environment and main.py, nothing else (no pip,
# no build tools, no tests, no emulator). setuptools stays: airbyte-cdk declares it at runtime.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY source_sendgrid ./source_sendgrid
RUN python -m venv /opt/venv \
 && python -m pip wheel --no-deps --wheel-dir /build/dist . \
 && /opt/venv/bin/pip install /build/dist/*.whl \
 && /opt/venv/bin/python -m pip uninstall --yes pip

FROM python:3.11-slim
LABEL io.airbyte.name="airbyte/source-sendgrid" \
      io.airbyte.version="0.2.2"
# Airbyte runs source images as any user; a fixed unprivileged one (uid 1000) is enough here: the
# connector only reads its mounted config, catalog and state, and writes to stdout.
RUN useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin airbyte
COPY --from=builder /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1
WORKDIR /airbyte/integration_code
COPY main.py ./
ENV AIRBYTE_ENTRYPOINT="python /airbyte/integration_code/main.py"
ENTRYPOINT ["python", "/airbyte/integration_code/main.py"]
USER airbyte
