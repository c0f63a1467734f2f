"""The training engine: builds and runs a fit (or validate/test/predict) from a config.

litforge fit --config configs/digits.yaml      # the command line is a thin layer over this package

``cli`` parses and prints; ``tune``, ``check`` and benchmarks call ``litforge.engine.api`` with typed
values (``parse_fit_config``, ``run_command``, ``instantiate_model_and_data``). The run-folder layout is
``litforge.engine.run_dir.RunDir``.
"""
