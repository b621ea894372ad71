"""One verify report: its model (the JSON document the plugin builds, `model`), and its renderings:
console, JUnit, HTML."""
