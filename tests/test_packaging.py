"""The installed distribution is releasable: license, metadata, stripped extension modules."""
import importlib
import importlib.metadata
import struct

import pytest

EXTENSIONS = ["fastlru._lru_c", "fastlru._functools_c", "ormcache._cache_c"]


def elf_section_names(path):
    """The section names of a 64-bit little-endian ELF shared object."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a 64-bit little-endian ELF"
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_offset = headers[shstrndx][4]
    return {data[strtab_offset + name:data.index(b"\0", strtab_offset + name)].decode() for name, *_ in headers}


def test_metadata_says_what_a_release_needs():
    meta = importlib.metadata.metadata("fastlru")
    assert meta["License-Expression"] == "MIT"
    assert meta["Author"] == "fastlru/ormcache authors" or "fastlru/ormcache authors" in (meta["Author-email"] or "")
    classifiers = set(meta.get_all("Classifier"))
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in range(9, 14)} <= classifiers
    assert "Typing :: Typed" in classifiers
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL"))
    assert {"Homepage", "Source", "Issues"} <= set(urls)
    assert meta["Requires-Python"] == ">=3.9"


def test_the_license_file_ships():
    files = importlib.metadata.files("fastlru")
    licenses = [f for f in files if f.name == "LICENSE"]
    assert licenses, "no LICENSE in the installed distribution"
    text = licenses[0].read_text()
    assert text.startswith("MIT License") and "fastlru/ormcache authors" in text


@pytest.mark.parametrize("name", EXTENSIONS)
def test_extension_modules_are_stripped(name):
    sections = elf_section_names(importlib.import_module(name).__file__)
    assert ".dynsym" in sections  # the parser read real section names
    assert ".symtab" not in sections and not {s for s in sections if s.startswith(".debug")}, sorted(sections)
