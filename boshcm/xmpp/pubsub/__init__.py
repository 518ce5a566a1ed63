"""Personal eventing (XEP-0163) on every account: node configuration, storage, capabilities, the service."""

from boshcm.xmpp.pubsub.node import NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER, AccessModel, NodeConfig
from boshcm.xmpp.pubsub.service import PUBSUB_NAMESPACES, PepLimits, PepService, Send
from boshcm.xmpp.pubsub.store import MemoryPepStore, OwnerPep, PepSource, PepStore, SqlitePepStore

__all__ = ["NS_PUBSUB", "NS_PUBSUB_EVENT", "NS_PUBSUB_OWNER", "PUBSUB_NAMESPACES", "AccessModel", "MemoryPepStore",
           "NodeConfig", "OwnerPep", "PepLimits", "PepService", "PepSource", "PepStore", "Send", "SqlitePepStore"]
