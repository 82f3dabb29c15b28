"""Authentication and tenancy: JWT bearer tokens, scopes, the principal and its workspace filter."""
