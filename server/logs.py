"""Log set-up: plain lines for people, or one JSON object per line for collectors."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "msg", ...fields} per record (`extra={"fields": ...}`)."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        out = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class PlainFormatter(logging.Formatter):
    """Time, level, message and the fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        """One readable line."""
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname} {record.getMessage()} {fields}".rstrip()


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Configure the root logger once for `mlipserve serve`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("mlipserve.batches").setLevel(max(root.level, logging.INFO))
