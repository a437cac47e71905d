"""labkit: the small, tested toolkit behind the GAN course pack's notebooks.

Notebooks import the modules they use explicitly, e.g.
``from labkit import data, models, train, plots``.
"""

__version__ = "0.1.0"
