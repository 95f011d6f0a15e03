"""Declares the compiled extensions. A build that cannot compile them fails: we never ship
a wheel that silently falls back to pure Python."""
from Cython.Build import cythonize
from setuptools import Extension, setup

DIRECTIVES = {
    "language_level": 3,
    "freethreading_compatible": True,
}

extensions = [
    Extension("fastlru._lru_c", ["src/fastlru/_lru_c.pyx"]),
    Extension("fastlru._functools_c", ["src/fastlru/_functools_c.pyx"]),
    Extension("ormcache._cache_c", ["src/ormcache/_cache_c.pyx"]),
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
