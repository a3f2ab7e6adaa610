"""SMTP doors: the relay (and, later, inbound mail)."""
