"""The CDK's standard source tests, driven by acceptance-test-config.yml, against the emulator on its known port.

They run in-process: spec (and its lint), config against spec, check good and bad, discover, a full-refresh
read of the configured catalog with schema validation, a read with a broken catalog, and a scan for leaked
secrets. What they do not cover is in test_acceptance_files.py (expected records, the acceptance files) and
test_acceptance_checks.py (Airbyte's incremental checks, full refresh twice, secrets, keys and schemas).
Their docker tests are replaced here: `.ci/image.sh` builds and runs the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from airbyte_cdk.test.models.scenario import REMOVED_ENTRY_KEYS
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.standard_tests.pytest_hooks import pytest_generate_tests  # noqa: F401 - parametrizes `scenario`
from boltons.typeutils import classproperty

from sendgrid_emulator import secrets_guard
from integration_tests.acceptance import CONFIG, INVALID_CONFIG, acceptance_emulator, load_json
from source_sendgrid import SourceSendgrid

ROOT = Path(__file__).resolve().parents[1]
_IMAGE_TESTS = "the image is built and run against the emulator by .ci/image.sh (no Docker daemon in this test run)"


class TestSourceSendgridStandard(SourceTestSuiteBase):
    # The repository's directory is not named after the connector, so name both explicitly.
    connector = SourceSendgrid
    connector_name = "source-sendgrid"

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        return ROOT

    @classproperty
    def acceptance_test_config(cls) -> Dict[str, Any]:
        """The shared file, minus the classic suite's keys that the standard tests reject."""
        config = yaml.safe_load((ROOT / "acceptance-test-config.yml").read_text())
        for section in config["acceptance_tests"].values():
            for entry in section.get("tests", []):
                for key in REMOVED_ENTRY_KEYS:
                    entry.pop(key, None)
        return config

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _emulator(cls):
        # The suite reads its configs from files: tell the leak guard their keys and the emulator's address.
        for path in (CONFIG, INVALID_CONFIG):
            secrets_guard.register_config(load_json(path))
        with acceptance_emulator() as running:
            yield running

    def test_config_matches_spec(self, scenario) -> None:
        # A config listed under `spec` and under `basic_read` is merged into one scenario that keeps the
        # read's catalog, and the CDK would pass that catalog to `spec`, which rejects it.
        super().test_config_matches_spec(scenario.model_copy(update={"configured_catalog_path": None}))

    def test_docker_image_build_and_spec(self) -> None:
        pytest.skip(_IMAGE_TESTS)

    def test_docker_image_spec_backward_compatibility(self) -> None:
        pytest.skip(_IMAGE_TESTS)

    def test_docker_image_build_and_check(self) -> None:
        pytest.skip(_IMAGE_TESTS)

    def test_docker_image_build_and_config_matches_spec(self) -> None:
        pytest.skip(_IMAGE_TESTS)

    def test_docker_image_build_and_discover(self) -> None:
        pytest.skip(_IMAGE_TESTS)

    def test_docker_image_build_and_read(self) -> None:
        pytest.skip(_IMAGE_TESTS)
