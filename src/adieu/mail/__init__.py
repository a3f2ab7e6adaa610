"""The mail path (a door): headers, visible link, DKIM signing and lint."""
