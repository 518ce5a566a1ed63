"""The XMPP side of a BOSH session or an off-board WebSocket, whatever the transport in front.

`link.py` says what a link is (`Link`) and who hears from it (`UpstreamListener`); `negotiation.py` is the
off-board stream towards an upstream XMPP server as a pure machine, `offboard_link.py` its asyncio adapter
(`OffboardLink`), and `websocket_relay.py` one WebSocket relayed over such a link (`WebSocketRelay`). The
on-board link, a BOSH session bound to the embedded server, is BOSH's own (`bosh/onboard.py`).
"""
