"""Repository scripts (recipes, benchmarks, the demo) imported as modules, for the tests.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import importlib.util
import sys
from pathlib import Path

#: The repository root (this package lives in ``<root>/craft_modules/testing``).
REPO = Path(__file__).resolve().parents[2]


def load_script(path, name=None):
    """Imports the script at ``path`` as a module, as running it would see its folder.

    The script's folder is on ``sys.path`` while it is imported (so a recipe
    finds its ``*_prepare.py``), and the module is not registered in
    ``sys.modules``.

    Arguments
    ---------
    path : str or os.PathLike
        The script, absolute or relative to the repository root.
    name : str, optional
        The module's name; default the file's stem.

    Returns
    -------
    module

    Example
    -------
    >>> prepare = load_script("recipes/ESC50/esc50_prepare.py")
    >>> prepare.__name__, callable(prepare.prepare_esc50)
    ('esc50_prepare', True)
    """
    path = Path(path)
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file():
        raise FileNotFoundError(f"no script at {path}")
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module
