"""The optional compiled expansion loop (zdps/daemon/expansion.py); everything else is in
pyproject.toml. ``optional=True``: without a C compiler the build skips it with a warning
and zdps uses the pure-Python loop."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("zdps.daemon._expand", ["zdps/daemon/_expand.c"], optional=True)])
