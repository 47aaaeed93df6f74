"""What `help(layer)` shows a student: every public layer's own docstring lists every argument
of its constructor (BatchNorm1d's said only "The arguments are BatchNorm's")."""

import inspect
import re

import pytest

import minibn.nn as nn


def documented(doc):
    """The argument names of a numpydoc "Parameters" section ("a : int", or "a, b" for several)."""
    doc = inspect.cleandoc(doc or "")
    if "Parameters\n----------" not in doc:
        return set()
    section = doc.split("Parameters\n----------\n", 1)[1]
    section = re.split(r"\n\S[^\n]*\n-{3,}\n", "\n" + section, maxsplit=1)[0]  # up to the next header
    names = set()
    for line in section.splitlines():
        if line and not line[0].isspace():  # a name line (its description is indented)
            names |= {n.strip().lstrip("*") for n in line.split(" : ")[0].split(",")}
    return names


LAYERS = [name for name in nn.__all__
          if inspect.isclass(getattr(nn, name)) and issubclass(getattr(nn, name), nn.Module)
          and getattr(nn, name).__init__ is not nn.Module.__init__]


@pytest.mark.parametrize("name", LAYERS)
def test_help_lists_every_argument(name):
    cls = getattr(nn, name)
    args = [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [a for a in args if a not in documented(cls.__doc__)]
    assert not missing, f"{name}'s docstring does not list {missing}"


def test_the_check_reads_a_section():
    doc = """One line.

    Parameters
    ----------
    a : int
        The first.
    b, c
        As elsewhere.

    Raises
    ------
    d : never
    """
    assert documented(doc) == {"a", "b", "c"} and documented("No sections.") == set()


def test_the_package_imports_without_docstrings():
    """`python -OO` strips docstrings: the decorator that appends a base's Parameters section
    to a layer's docstring crashed the import there, and three commands' descriptions the CLI
    (AttributeError on None)."""
    import subprocess
    import sys
    code = """
import argparse, minibn, minibn.nn
from minibn.cli import build_parser

def helps(parser):  # every command's --help text (some commands' descriptions quote their module's docstring)
    parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                helps(sub)

helps(build_parser())
print(minibn.nn.BatchNorm1d.__doc__)
"""
    out = subprocess.run([sys.executable, "-OO", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
