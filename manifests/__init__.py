"""Manifest schema, the DuckDB catalog and the SQL entry points."""
