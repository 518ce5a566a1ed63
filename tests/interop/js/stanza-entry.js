// StanzaJS ships no browser bundle; the interop tests load this one (built by `npm run build:test-clients`).
import * as XMPP from "stanza";
window.XMPP = XMPP;
