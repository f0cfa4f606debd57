"""Seeded synthetic-world generators (plates, road scenes, circuits); tools only, not installed."""
