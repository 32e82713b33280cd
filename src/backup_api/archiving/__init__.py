"""Archives: the ZIP format, the SQL a restore accepts, and the archive process that writes,
extracts and verifies them outside the service's own process.

Empty on purpose: the archive process imports modules of this package, and whatever this
file imported would slow every backup's start (see ``child``).
"""
