"""The layout metrics' line counting (the ESC-50 batch trace is not run here)."""

from pathlib import Path

from craft_modules.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def load_house_metrics():
    return load_script("benchmarks/house_metrics.py")


SOURCE = '''#!/usr/bin/env python3
"""Module docstring.

Spans several lines.
"""

# A comment line.
import os  # an inline comment keeps the line


class Thing:
    """Class docstring."""

    size = 2

    def method(self):
        """Method
        docstring."""
        # comment inside
        text = """not a
docstring"""
        return text


def function():
    "Single-quoted docstring."
    value = "a string expression, not first"

    async def inner():
        """Inner docstring."""
        return os.sep

    return value, inner
'''
# Code lines: import, class, size, def method, text = (2 lines), return text,
# def function, value, async def inner, return os.sep, return value.
EXPECTED = 12


def test_code_lines_of_a_source():
    metrics = load_house_metrics()
    assert metrics.count_code_lines(SOURCE) == EXPECTED
    assert metrics.count_code_lines("") == 0
    assert metrics.count_code_lines('"""Only a docstring."""\n# and a comment\n') == 0
    # A docstring on the line of its def: the def line still counts.
    assert metrics.count_code_lines('def f(): "doc"\n') == 1


def test_module_sizes_of_a_tree(tmp_path):
    metrics = load_house_metrics()
    package = tmp_path / "craft_modules" / "sub"
    package.mkdir(parents=True)
    (package / "big.py").write_text(SOURCE, encoding="utf-8")
    (tmp_path / "craft_modules" / "small.py").write_text(
        "x = 1\n\n# c\ny = 2\n", encoding="utf-8"
    )
    recipe = tmp_path / "recipes" / "X"
    recipe.mkdir(parents=True)
    (recipe / "train.py").write_text('"""Doc."""\nimport sys\n', encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "ignored.py").write_text("z = 3\n", encoding="utf-8")

    sizes = metrics.module_sizes(tmp_path, top=2)
    assert sizes["total"] == EXPECTED + 2 + 1
    assert sizes["n_files"] == 3
    assert sizes["largest"] == [
        {"file": "craft_modules/sub/big.py", "loc": EXPECTED},
        {"file": "craft_modules/small.py", "loc": 2},
    ]
    assert sizes["per_file"]["recipes/X/train.py"] == 1
