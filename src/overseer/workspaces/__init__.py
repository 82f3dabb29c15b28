"""Workspaces: the tenant boundary and a code directory."""
