"""Declares the compiled extensions. A build that cannot compile them fails: we never ship
a wheel that silently falls back to pure Python.

The extensions are built without debug information and linked stripped (`-g0`, `-s`: about a
sixth of the size), unless the build asks for debug information or a sanitizer in CFLAGS
(scripts/asan: `-g -fsanitize=address`), whose reports need the symbols.
"""
import glob
import os
import shlex

from Cython.Build import cythonize
from setuptools import Extension, setup

DIRECTIVES = {
    "language_level": 3,
    "freethreading_compatible": True,
}


def keeps_debug_info(cflags: str) -> bool:
    """True if CFLAGS asks for debug information (-g, -g3, -ggdb...) or a sanitizer."""
    return any((flag.startswith("-g") and flag != "-g0") or flag.startswith("-fsanitize")
               for flag in shlex.split(cflags))


if keeps_debug_info(os.environ.get("CFLAGS", "")):
    compile_args, link_args = [], []
else:
    compile_args, link_args = ["-g0"], ["-s"]


def headers(source: str) -> list:
    """The headers beside a .pyx (its C lives there): a change to one rebuilds the extension."""
    return sorted(glob.glob(os.path.join(os.path.dirname(source), "*.h")))


extensions = [
    Extension(name, [source], depends=headers(source), extra_compile_args=compile_args,
              extra_link_args=link_args)
    for name, source in [
        ("fastlru._lru_c", "src/fastlru/_lru_c.pyx"),
        ("fastlru._functools_c", "src/fastlru/_functools_c.pyx"),
        ("fastlru._policy_c", "src/fastlru/_policy_c.pyx"),
        ("ormcache._cache_c", "src/ormcache/_cache_c.pyx"),
    ]
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
