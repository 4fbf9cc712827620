"""Start-up: importing airbyte-cdk takes over a second in every process; two parts of that are avoidable.
The command line (run.py) avoids them around its first import of the CDK; importing the package does not,
as neither is a library's to change in someone else's process.

- The garbage collector. The import creates hundreds of thousands of objects and next to no garbage, yet
  a collection runs every few hundred allocations and walks them all. The collector is paused for the
  import, and what exists after it (the CDK's modules, classes, models and serializers, which live as
  long as the process) is frozen out of its walks, during the import and during a sync that allocates
  millions of short-lived records: about 0.3 s of the start, and less collector work per page.
- Source-code parsing. The import builds serpyco-rs serializers for the protocol's dataclasses, and for
  each class serpyco-rs reads the attribute docstrings (descriptions for its JSON schema) with
  `attributes_doc`, which on Python before 3.13 finds a class's source by parsing its whole module again:
  the protocol module about fifty times, 0.6-0.7 s. Nothing reads those descriptions (the CDK only
  serialises and validates messages), so the lookup is made to find none. If serpyco-rs moves the lookup,
  nothing is replaced and the import is only slower, never different.
"""

from __future__ import annotations

import gc
import importlib
from contextlib import contextmanager
from typing import Dict, Iterator

# The modules of serpyco-rs that took `get_attributes_doc` from `serpyco_rs._utils` by name.
LOOKUP_USERS = ("serpyco_rs._describe", "serpyco_rs._json_schema._convert")


def no_attribute_docs(cls: type) -> Dict[str, str]:
    return {}


def skip_serializer_docstrings() -> None:
    try:
        original = importlib.import_module("serpyco_rs._utils").get_attributes_doc
        users = [importlib.import_module(name) for name in LOOKUP_USERS]
    except (ImportError, AttributeError):
        return
    for module in users:
        if getattr(module, "get_attributes_doc", None) is original:
            module.get_attributes_doc = no_attribute_docs


@contextmanager
def lean_import() -> Iterator[None]:
    """Around the first import of airbyte_cdk: no docstring lookups, and no collections until it is done;
    then what the import made is frozen, so re-enabling the collector does not walk it all at once."""
    skip_serializer_docstrings()
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
