"""Enhanced sampling: collective variables, umbrella sampling with MBAR/WHAM, metadynamics."""
