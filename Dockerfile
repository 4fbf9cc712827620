# source-sendgrid as an Airbyte connector image.
#   docker build -t source-sendgrid/source-sendgrid:dev .
#   docker run --rm source-sendgrid/source-sendgrid:dev spec
# Two stages: the builder installs the dependencies from requirements/runtime.txt (exact versions, every file
# hash-checked; bin/lock writes it) into a virtual environment, then the package itself; the runtime stage
# gets that environment and main.py, nothing else (no pip, no build tools, no tests, no emulator).
# setuptools stays: airbyte-cdk declares it at runtime, and it is the locked one that builds the package.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements/pip.txt requirements/runtime.txt ./requirements/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements/pip.txt \
 && /opt/venv/bin/pip install --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY source_sendgrid ./source_sendgrid
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -m pip uninstall --yes pip

FROM python:3.11-slim
LABEL io.airbyte.name="source-sendgrid/source-sendgrid" \
      io.airbyte.version="0.3.1"
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
