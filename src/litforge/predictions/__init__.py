"""What a model's outputs mean (``output_head``) and how predictions are written (``csv_columns``): one
definition shared by ``litforge predict`` from a checkpoint, ``predict --artifact`` and ``serve``."""
