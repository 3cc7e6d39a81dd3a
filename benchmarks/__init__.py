"""vitedge package."""
