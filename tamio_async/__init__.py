"""tamio-async (under construction)."""
