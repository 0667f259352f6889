"""torchsanity's front ends: the `torchsanity` command line and the language server."""

# The one version source: pyproject.toml reads it (setuptools dynamic version), package.json must match it.
__version__ = "0.1.0"
