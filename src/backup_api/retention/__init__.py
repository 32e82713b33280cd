"""Retention: which backups of a database to keep (``policy``), and the sweep that deletes
the others (``sweep``)."""
