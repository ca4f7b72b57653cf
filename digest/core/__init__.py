"""Foundation: settings, database, models, tokens and validation; imports no other layer."""
