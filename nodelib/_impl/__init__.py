"""nodelib's internals: one file per solver family, as in torchdiffeq. Import from :mod:`nodelib` instead."""
