"""Servers that each break one requirement, and the harness that runs the suite against them."""
