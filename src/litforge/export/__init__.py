"""Export a checkpoint to verified ONNX / torch.export / TorchScript artifacts (``litforge export``).

``loading`` rebuilds the module safely, ``spec`` says what to trace, one module per format exports and
loads back, ``parity`` compares every artifact with the eager model, ``metadata`` writes ``export.json``,
``artifact`` opens an export folder for batch inference and serving.
"""
