"""The optional compiled batch code (zdps/_batches.c: the entry node's batch check and the
raw PUB's expansion loop); everything else is in pyproject.toml. ``optional=True``:
without a C compiler the build skips it with a warning and zdps uses its pure-Python
twins."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("zdps._batches", ["zdps/_batches.c"], optional=True)])
