"""Web doors: the public pages (and, later, the admin API and dashboard)."""
