"""Every use of a private name of Lightning, Optuna, Ray, torch or the standard library, in one place.

Each module here wraps such accesses in small named functions, each with a conformance test
(``tests/test_compat*.py``) that fails loudly when the upstream shape changes. Everything else in litforge
uses public APIs or this package.
"""
