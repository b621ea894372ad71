"""The conformance checks: one module per requirement family, each check marked with its IDs.

Run them with `sessionlab verify`, or with pytest: `pytest --pyargs conformance.checks [options]`.
"""
