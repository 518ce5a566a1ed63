"""XEP-0313 message archives for accounts and rooms: the service (pure) and its stores."""

from boshcm.xmpp.mam.service import NS_MAM, NS_RSM, NS_STANZA_ID, ArchiveService, MamLimits, Party, remove_stanza_id
from boshcm.xmpp.mam.store import ArchivedMessage, ArchiveStore, Filter, MemoryArchiveStore, SqliteArchiveStore

__all__ = ["NS_MAM", "NS_RSM", "NS_STANZA_ID", "ArchiveService", "ArchiveStore", "ArchivedMessage", "Filter",
           "MamLimits", "MemoryArchiveStore", "Party", "SqliteArchiveStore", "remove_stanza_id"]
