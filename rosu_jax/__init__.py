"""rosu-jax."""
