"""LitServe prediction server for the registry's `champion` model."""
