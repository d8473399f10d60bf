"""The one compiled piece: passage.turn.fastpath._router, ChannelData relayed in C.

Everything else is in pyproject.toml. The extension is optional: without a C
compiler or Python's headers the build says so in one warning and installs the
pure-Python relay, which ``passage serve`` runs (``--fast-path auto``, the default).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "passage.turn.fastpath._router",
            ["src/passage/turn/fastpath/_router.c"],
            extra_compile_args=["-O2", "-Wall", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
