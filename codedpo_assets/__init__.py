"""codedpo: CodeDPO preference data (seeds → prompts → candidates/tests → pass matrix → scores →
pairs → DPO) as a Dagster asset platform over DuckDB.

Top-level modules are the pure core (no Dagster imports); ``codedpo_assets.assets`` wires them
to Dagster and the DuckDB store.
"""
