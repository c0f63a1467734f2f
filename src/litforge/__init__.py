"""litforge: the production layer for PyTorch Lightning.

Run ``litforge --help`` for the command line; ``litforge fit`` trains the packaged digits classifier.
"""

__version__ = "0.1.0"
