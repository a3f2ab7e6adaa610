"""Webhooks out (a door): every ledger event, delivered at least once and in
order per address, signed, with retries and dead letters (``deliver``), over a
small keep-alive HTTP/1.1 client (``http``)."""
