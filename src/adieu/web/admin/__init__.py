"""The operator\x27s side of the web door: the JSON API, the dashboard, sign-in."""
