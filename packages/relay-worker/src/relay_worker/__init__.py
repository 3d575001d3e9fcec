"""relay_worker."""
