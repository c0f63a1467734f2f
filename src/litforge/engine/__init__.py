"""The training engine: builds and runs a fit (or validate/test/predict) from a config.

litforge fit --config configs/digits.yaml      # the command line is a thin layer over this package

``cli`` parses and prints; ``tune`` and ``check`` call the same functions with typed values.
"""
