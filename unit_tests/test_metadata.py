"""metadata.yaml is what Airbyte's registry and tooling read: it must be valid against Airbyte's published metadata
model (the `airbyte-connector-models` package: the Pydantic model and the JSON schema it ships), and it must name
this project's image, not Airbyte's official source-sendgrid, which is another connector under the same name."""

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from airbyte_connector_models.metadata.v0.connector_metadata_definition_v0 import ConnectorMetadataDefinitionV0
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
SCHEMA = json.loads(
    resources.files("airbyte_connector_models.metadata.v0").joinpath("ConnectorMetadataDefinitionV0.json").read_text()
)

# Airbyte's own source-sendgrid (airbyte-integrations/connectors/source-sendgrid/metadata.yaml in airbytehq/airbyte).
OFFICIAL_REPOSITORY = "airbyte/source-sendgrid"
OFFICIAL_DEFINITION_ID = "fbb5fbe2-16ad-4cf4-af7d-ff9d9c316c87"


def schema_errors(document: dict) -> list:
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def test_metadata_is_valid_against_airbytes_published_model():
    ConnectorMetadataDefinitionV0.model_validate(METADATA)
    assert schema_errors(METADATA) == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda data: data.pop("definitionId"),
        lambda data: data.update(connectorType="sink"),
        lambda data: data.update(releaseStage="stable"),
        lambda data: data.update(unknownField=True),
    ],
    ids=["no definitionId", "unknown connector type", "unknown release stage", "unknown field"],
)
def test_the_published_model_rejects_a_broken_metadata_file(break_it):
    broken = json.loads(json.dumps(METADATA))
    break_it(broken["data"])
    with pytest.raises(ValidationError):
        ConnectorMetadataDefinitionV0.model_validate(broken)
    assert schema_errors(broken)


def test_the_image_is_the_projects_own_not_airbytes_official_one():
    data = METADATA["data"]
    assert data["dockerRepository"] == "source-sendgrid/source-sendgrid"
    assert data["definitionId"] != OFFICIAL_DEFINITION_ID


def test_every_file_that_names_the_image_names_the_same_one():
    repository = METADATA["data"]["dockerRepository"]
    acceptance = yaml.safe_load((ROOT / "acceptance-test-config.yml").read_text())
    assert acceptance["connector_image"] == f"{repository}:dev"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'io\.airbyte\.name="([^"]+)"', dockerfile).group(1) == repository
    for path in ["Dockerfile", ".ci/image.sh", "integration_tests/image_check.py", "acceptance-test-config.yml"]:
        named = set(re.findall(r"(?:[a-z0-9][\w.-]*/)?source-sendgrid:(?:dev|\d+\.\d+\.\d+)", (ROOT / path).read_text()))
        assert named <= {f"{repository}:dev"}, f"{path} names {named}"
    everything = "".join(
        path.read_text(errors="replace")
        for pattern in ["*.yml", "*.yaml", "Dockerfile", ".ci/*", "bin/*", "demo/*.py", "integration_tests/*.py"]
        for path in ROOT.glob(pattern)
    )
    assert OFFICIAL_REPOSITORY not in everything
