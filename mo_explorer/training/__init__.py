"""Training and evaluation of the multi-objective reward head."""
