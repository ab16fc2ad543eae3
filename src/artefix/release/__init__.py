"""Release tooling: ship a trained model, change its inference settings, refresh its validation, render its page.

A developer tool: it ships with the package but works only on a repository checkout, where it writes
``src/artefix/weights/NAME.safetensors`` (with the card) and ``docs/models.md`` plus ``docs/models/NAME.md``.
One command with subcommands (``python -m artefix.release --help``):

    python -m artefix.release model RUN NAME --config CONFIG ...      ship a trained run (publish)
    python -m artefix.release set-inference NAME key=value ... --note  change inference settings (inference)
    python -m artefix.release refresh-validation NAME ... --evaluation re-read a card's validation (validation)
    python -m artefix.release docs                                     re-render the model pages (docs)

``scripts/release_model.py``, ``scripts/set_inference.py`` and ``scripts/refresh_validation.py`` are shims
for the first three.
"""
