"""Model-building logic kept free of orchestration so it can be tested and served on its own."""
