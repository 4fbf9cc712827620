"""One version and one image name everywhere: pyproject.toml, metadata.yaml, the Dockerfile's labels and
docs/changelog.md; and the Dockerfile and metadata.yaml follow Airbyte's conventions."""

import json
import re
import tomllib
import uuid
from pathlib import Path

import yaml

from source_sendgrid import SourceSendgrid

ROOT = Path(__file__).resolve().parents[1]
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())["data"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
CONFIG = {"api_key": "SG.version-test-key-xx", "api_base_url": "http://127.0.0.1:9"}


def package_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def label(name: str) -> str:
    found = re.search(rf'{re.escape(name)}="([^"]*)"', DOCKERFILE)
    assert found, f"the Dockerfile has no {name} label"
    return found.group(1)


def test_versions_agree():
    version = package_version()
    assert METADATA["dockerImageTag"] == version
    assert label("io.airbyte.version") == version
    changelog = (ROOT / "docs" / "changelog.md").read_text()
    first_row = re.search(r"^\| *(\d+\.\d+\.\d+) *\|", changelog, re.MULTILINE)
    assert first_row and first_row.group(1) == version, "docs/changelog.md's newest row is not the package version"


def test_image_name_agrees():
    assert label("io.airbyte.name") == METADATA["dockerRepository"]


def test_dockerfile_follows_airbyte_conventions():
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert stages and all(stage == "python:3.11-slim" for stage in stages)
    assert "WORKDIR /airbyte/integration_code" in DOCKERFILE
    assert 'ENV AIRBYTE_ENTRYPOINT="python /airbyte/integration_code/main.py"' in DOCKERFILE
    assert 'ENTRYPOINT ["python", "/airbyte/integration_code/main.py"]' in DOCKERFILE
    assert re.search(r"^USER (?!root|0\b)\S+", DOCKERFILE, re.MULTILINE), "the image should not run as root"


def test_metadata_is_complete():
    assert uuid.UUID(METADATA["definitionId"])
    assert METADATA["connectorType"] == "source" and METADATA["connectorSubtype"] == "api"
    assert METADATA["releaseStage"] and METADATA["supportLevel"]
    spec_url = json.loads((ROOT / "source_sendgrid" / "spec.json").read_text())["documentationUrl"]
    assert METADATA["documentationUrl"] == spec_url
    hosts = METADATA["allowedHosts"]["hosts"]
    assert {"api.sendgrid.com", "api.eu.sendgrid.com"} <= set(hosts)
    assert any("amazonaws.com" in host and "*" in host for host in hosts), "export files are served from S3"
    assert METADATA["maxSecondsBetweenMessages"] >= 3600


def test_suggested_streams_exist():
    names = {stream.name for stream in SourceSendgrid().streams(CONFIG)}
    suggested = METADATA["suggestedStreams"]["streams"]
    assert suggested and set(suggested) <= names, set(suggested) - names
