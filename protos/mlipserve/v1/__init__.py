"""Generated gRPC contract of mlipserve (regenerate with `make stubs`)."""
