"""SQL stores on SQLAlchemy Core: SQL Server, PostgreSQL, SQLite."""
