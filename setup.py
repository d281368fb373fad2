"""Declares flagstaff's compiled evaluation core; metadata lives in pyproject.toml.

Environment switches (for developers profiling the core):

* ``FLAGSTAFF_ANNOTATE=1`` writes Cython's HTML annotation next to the sources.
* ``FLAGSTAFF_TRACE=1`` compiles with line tracing so profilers see Cython lines.
* ``FLAGSTAFF_DEBUG=1`` builds without optimisation and with assertions.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from Cython.Build import cythonize
except ImportError as exc:  # pragma: no cover - exercised only on broken setups
    raise RuntimeError(
        "flagstaff's evaluation core is written in Cython, and Cython 3 is not "
        "installed: install it with 'pip install \"Cython>=3,<4\"' (pip does this "
        "by itself when it builds flagstaff with build isolation)."
    ) from exc

CORE = "src/flagstaff/core"
debug = os.environ.get("FLAGSTAFF_DEBUG") == "1"
trace = os.environ.get("FLAGSTAFF_TRACE") == "1"

if sys.platform == "win32":
    compile_args = ["/O2"]
else:
    compile_args = ["-O0", "-g"] if debug else ["-O3"]
    compile_args += ["-std=c99", "-Wall", "-Wno-unused-function"]

macros = [("CYTHON_TRACE", "1")] if trace else []
if not debug:
    macros.append(("NDEBUG", "1"))

extensions = [
    Extension(
        "flagstaff.core._core",
        sources=[
            f"{CORE}/_core.pyx",
            f"{CORE}/hashing.c",
            f"{CORE}/evaluate.c",
            f"{CORE}/textual.c",
        ],
        include_dirs=[CORE],
        depends=[f"{CORE}/hashing.h", f"{CORE}/evaluate.h", f"{CORE}/textual.h"],
        extra_compile_args=compile_args,
        define_macros=macros,
    ),
]



class BuildCore(build_ext):
    """Builds the core, saying plainly what is missing when it cannot."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            compiler = os.environ.get("CC", "a C compiler (gcc or clang)")
            raise RuntimeError(
                f"flagstaff's evaluation core could not be compiled ({exc}). It "
                f"needs {compiler} and the Python development headers: on "
                "Debian or Ubuntu 'apt-get install build-essential python3-dev'."
            ) from exc


setup(
    cmdclass={"build_ext": BuildCore},
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
            "linetrace": trace,
        },
        annotate=os.environ.get("FLAGSTAFF_ANNOTATE") == "1",
    ),
)
