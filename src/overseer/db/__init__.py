"""Storage: declarative base, column types, the engine and the unit of work."""
