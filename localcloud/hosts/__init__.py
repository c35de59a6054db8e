"""Real Debian machines for localcloud servers (--hosts nspawn)."""
