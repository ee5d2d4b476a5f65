"""Exchange with other tools' formats (MTEB's results repository)."""
