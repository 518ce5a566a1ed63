"""BOSH (XEP-0124) carrying XMPP (XEP-0206)."""
