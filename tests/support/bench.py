"""The benchmark command in a child process, for the tests of ``python -m fastlru.bench``."""
import os
import subprocess
import sys

import fastlru


def run_bench(*args, timeout=300):
    """``python -m fastlru.bench *args`` (a CompletedProcess with text output); the child imports
    the same fastlru as this test run."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastlru.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "fastlru.bench", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)
