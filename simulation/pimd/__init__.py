"""Path-integral MD: ring polymers, normal modes, PILE thermostats, quantum estimators."""
