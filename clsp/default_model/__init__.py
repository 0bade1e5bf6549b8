"""The default CLSP model's files (config.json, model.safetensors), shipped as package data.

Load it with ``clsp.load_model()``; rebuild it with ``examples/default_model/build.sh``
(see docs/default-model.md).
"""
