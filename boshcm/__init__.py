"""boshcm: a BOSH/WebSocket connection manager with an embedded XMPP server."""

__version__ = "0.1.0"
