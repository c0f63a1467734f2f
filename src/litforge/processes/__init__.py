"""Process-level helpers for litforge's long-lived processes (servers, search workers) and their children."""
