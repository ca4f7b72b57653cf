"""Mail: plain data in, message bytes out; DKIM, SMTP and the outbox. Imports nothing else of digest."""
