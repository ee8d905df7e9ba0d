"""The REST API (FastAPI): health, metrics, models, and a msgpack/JSON evaluate route."""

from mlipserve.server.rest.app import create_app

__all__ = ["create_app"]
