"""Authentication (passwords, tokens, API keys, the current principal) and authorization policy."""
