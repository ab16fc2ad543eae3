"""Shipped model weights: ``NAME.safetensors`` + ``NAME.json`` (model card with the weights' sha256).

Listed by ``artefix models`` and loaded by name with ``artefix correct --model NAME`` (see
:mod:`artefix.models.registry`). Set ``ARTEFIX_WEIGHTS_DIR`` to use another folder instead.
"""
