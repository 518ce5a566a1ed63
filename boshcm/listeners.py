"""What every listening socket of boshcm shares."""

from __future__ import annotations

from typing import Final

# Connections the kernel completes and queues for a listener while the server is busy (the accept backlog). A
# burst of players arriving at once, or every client of a drained node reconnecting, opens hundreds of connections
# in a moment; past the backlog the kernel drops their SYNs and each of those clients waits a second (then three,
# seven...) before trying again. asyncio's default is 100 and aiohttp's 128; the kernel caps this at
# net.core.somaxconn (4096 by default since Linux 5.4).
LISTEN_BACKLOG: Final = 4096
