"""The results history: every finished run in a database (SQLAlchemy; SQLite by default,
PostgreSQL for a team), and the trends and change points over runs drawn from it."""
