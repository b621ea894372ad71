"""Renderings of one verify report (the JSON document the plugin builds): console, JUnit, HTML."""
