"""Code location entry point (``dagster dev -w workspace.yaml``, ``dg check defs``)."""

from codedpo_assets.assets import build_definitions

defs = build_definitions()
