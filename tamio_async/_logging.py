"""``TAMIO_LOG``: the library's logging on stderr, turned on from the environment.

``TAMIO_LOG=debug`` (or ``info``, ``warning``; like ``OPENAI_LOG``), read once when
``tamio_async`` is imported, sets the level of the ``tamio_async`` logger and gives it a
stderr handler. That handler writes only records no other handler will see: once the app
configures logging (``logging.basicConfig``, a framework), the records appear there, once,
in the app's format. Any other value is ignored with one warning naming the variable and
what it accepts; nothing here ever raises at import.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

__all__ = ["ENV_VAR", "configure_from_env"]

ENV_VAR = "TAMIO_LOG"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _FallbackStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr`` the records that no other handler takes."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if self._handled_elsewhere(record):
            return
        self.stream = sys.stderr  # not the one of import time (pytest, rich swap it)
        super().emit(record)

    def _handled_elsewhere(self, record: logging.LogRecord) -> bool:
        node: logging.Logger | None = logging.getLogger(record.name)
        while node is not None:
            if any(h is not self and record.levelno >= h.level for h in node.handlers):
                return True
            if not node.propagate:
                return False
            node = node.parent
        return False


def configure_from_env(environ: Mapping[str, str] = os.environ) -> None:
    """Apply ``TAMIO_LOG`` (called on import; calling it again changes nothing more)."""
    raw = environ.get(ENV_VAR, "")
    if not raw.strip():
        return
    logger = logging.getLogger("tamio_async")
    level = _LEVELS.get(raw.strip().lower())
    if level is None:
        logger.warning("ignoring %s=%r: it accepts debug, info or warning", ENV_VAR, raw)
        return
    logger.setLevel(level)
    if not any(isinstance(h, _FallbackStderrHandler) for h in logger.handlers):
        logger.addHandler(_FallbackStderrHandler())


configure_from_env()
