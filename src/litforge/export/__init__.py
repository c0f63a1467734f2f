"""Export a checkpoint to verified ONNX / torch.export / TorchScript artifacts (``litforge export``).

``loading`` (reading the checkpoint through ``litforge.resilience.checkpoint_file``) rebuilds the module (checking class paths
before creating anything), ``spec`` says what to trace, one module per format exports and loads back
(``pt2_archive_check`` refuses a ``.pt2`` that would unpickle), ``parity`` compares every artifact with
the eager model, ``metadata`` writes and checks ``export.json``, ``artifact`` opens an export folder for
batch inference and serving; ``litforge.predictions.output_head`` says what the outputs mean.
"""
