"""The background engine: the job queue, tool supervision, the backup and restore
pipelines, the wording of failures, the job records' updates, and recovery after a crash.

Empty on purpose: the archive process imports ``jobs.priority``, and whatever this file
imported would slow every backup's start (see ``archiving.child``).
"""
