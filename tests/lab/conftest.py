"""Unit tests of scripts/lablib: topology resolution and address allocation, without root."""
import os
import sys

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "scripts")
sys.path.insert(0, SCRIPTS)


def pytest_addoption(parser):
    # every pytest registration (tests/CMakeLists.txt, ANYCHAIN_PYTEST) passes it; nothing here
    # needs a build
    parser.addoption("--build-dir", help="unused: these tests need no build")
