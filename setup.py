"""Extension list for the native core; everything else lives in pyproject.toml."""

import os
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("EMSFAST_DEBUG") == "1"
CSRC = sorted(glob("csrc/*.c"))

extensions = [
    Extension(
        f"emsfast._core.{os.path.splitext(os.path.basename(pyx))[0]}",
        [pyx, *CSRC],
        include_dirs=["csrc"],
        define_macros=[("EMSFAST_DEBUG", "1")] if DEBUG else [],
        extra_compile_args=["-O2", "-g0"] if not DEBUG else ["-O0", "-g"],
    )
    for pyx in sorted(glob("emsfast/_core/*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
        build_dir="build/cython",
    ),
)
