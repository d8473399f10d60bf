"""The ``passage`` command line."""
