"""Every use of a private name of Lightning, Optuna, Ray or torch, each in one small module with a
conformance test (tests/test_compat_*.py), so an upgrade that breaks one breaks one test."""
