"""The one compiled part: bot/engine/_lstm.c, the batch-1 sampling loop (see bot/engine/sampler.py).

Optional: where no C compiler is found the build goes on without it and the sampler runs
the same loop in NumPy, about 2.5x slower per character at batch 1. Everything else about
the package is in pyproject.toml.
"""

import sys

from setuptools import Extension, setup

args = [] if sys.platform == "win32" else ["-O3", "-std=gnu11", "-pthread", "-Wno-psabi"]
setup(
    ext_modules=[
        Extension(
            "bot.engine._lstm",
            ["bot/engine/_lstm.c"],
            extra_compile_args=args,
            extra_link_args=[] if sys.platform == "win32" else ["-pthread"],
            optional=True,
        )
    ]
)
