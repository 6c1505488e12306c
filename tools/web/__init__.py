"""See tools/README.md."""
