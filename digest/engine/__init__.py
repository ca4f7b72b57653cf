"""The engine: everything that owns a thread or a transaction (clock, senders, runners)."""
