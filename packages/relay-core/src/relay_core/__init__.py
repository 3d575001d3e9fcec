"""relay_core."""
