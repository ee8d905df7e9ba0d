"""The mlipserve server: gRPC service, dynamic batcher, model registry and models."""
