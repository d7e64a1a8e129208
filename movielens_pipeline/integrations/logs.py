"""Output that reads well in a terminal and in a log file.

- Not a terminal (cron, a pipe, ``make run > run.log``): no colour codes and no progress bars.
  ZenML reads ``ZENML_LOGGING_COLORS_DISABLED`` once, when it is imported, so ``make run``'s entry
  point sets it before importing anything else; under ``zenml pipeline run`` set it yourself.
- Framework lines that repeat at every step and say nothing about this run are dropped.
"""

from __future__ import annotations

import logging
import os
import sys

# (logger, start of the message): repeated once per step, about settings this project does not use.
NOISE = (
    ("zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker",
     "Failed to disable MLflow autologging"),  # a framework (fastai) that is not installed
    ("zenml.orchestrators.local.local_orchestrator",
     "Specifying step resources is not supported"),  # resources are for remote orchestrators
)  # fmt: skip


def plain_output_unless_terminal() -> None:
    """Environment defaults for plain output when stdout is not a terminal (call before importing
    zenml; an explicit setting always wins)."""
    if not sys.stdout.isatty():
        os.environ.setdefault("ZENML_LOGGING_COLORS_DISABLED", "true")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class _DropNoise(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def silence_framework_noise() -> None:
    """Drop the lines in ``NOISE`` (idempotent)."""
    for logger_name, prefix in NOISE:
        logger = logging.getLogger(logger_name)
        if not any(isinstance(f, _DropNoise) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropNoise(prefix))
