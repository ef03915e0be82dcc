"""Durable state: feedback, card log and the JWT replay cache (SQLite default, PostgreSQL)."""
