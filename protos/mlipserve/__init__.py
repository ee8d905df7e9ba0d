"""mlipserve: serve machine-learning interatomic potentials to many simulations at once."""

__version__ = "0.1.0"
