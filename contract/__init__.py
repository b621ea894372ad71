"""The session protocol as code: ids, routes, HTTP bodies, WebSocket frames, SSE framing,
requirements.

Every other package imports the contract from here, so a change to the protocol is made once.
"""

__version__ = "0.1.0"
