"""Start-up: spare every process the source-code parsing that airbyte-cdk's import sets off.

Importing airbyte-cdk builds serpyco-rs serializers for the protocol's dataclasses. For each class,
serpyco-rs reads the attribute docstrings (for its JSON schema's descriptions) with `attributes_doc`,
which on Python before 3.13 finds a class's source by parsing its whole module again: the protocol
module about fifty times, 0.6-0.7 s of a 2 s start, longer than a small stream's whole sync. Nothing
reads those descriptions (the CDK only serialises and validates messages), so the lookup finds none.

If serpyco-rs moves the lookup, nothing is replaced and the import is only slower, never different.
"""

from __future__ import annotations

import importlib
from typing import Dict

# The modules of serpyco-rs that took `get_attributes_doc` from `serpyco_rs._utils` by name.
_LOOKUP_USERS = ("serpyco_rs._describe", "serpyco_rs._json_schema._convert")


def no_attribute_docs(cls: type) -> Dict[str, str]:
    return {}


def skip_serializer_docstrings() -> None:
    try:
        original = importlib.import_module("serpyco_rs._utils").get_attributes_doc
        users = [importlib.import_module(name) for name in _LOOKUP_USERS]
    except (ImportError, AttributeError):
        return
    for module in users:
        if getattr(module, "get_attributes_doc", None) is original:
            module.get_attributes_doc = no_attribute_docs
