"""Imported first by the run server (tests/cli_process.py), before any library: a handler on the
root logger, as a fresh ``rlab`` process has one (Hydra's) by the time it imports Lightning, so
that Lightning, which adds its own stderr handler when the root logger has none, leaves its
messages to the run's logging as it does there."""

import logging

logging.getLogger().addHandler(logging.NullHandler())
