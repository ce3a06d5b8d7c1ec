"""NetworkPolicy enforcement tests."""
