"""The store: one SQLAlchemy Core schema over SQLite and PostgreSQL."""
