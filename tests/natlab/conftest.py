from natlab.fixtures import lab  # noqa: F401
