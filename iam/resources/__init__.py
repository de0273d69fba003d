"""IAM resource declarations, a module per JSON:API type."""
