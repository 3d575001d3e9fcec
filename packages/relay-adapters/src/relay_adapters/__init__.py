"""relay_adapters."""
