"""The domain: one module per noun; functions take a Session and flush, never commit."""
