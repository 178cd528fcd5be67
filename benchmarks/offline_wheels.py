"""Wheels of this project's dependencies for a GPU machine without network.

GPU nodes often have PyTorch (``torch`` + ``torchaudio`` for CUDA and
``numpy``) but no access to a package index. This script, run where pip can
reach one, downloads the wheels of everything else ``craft-modules`` needs,
at the versions installed here, built for the GPU machine's Python:

    python benchmarks/offline_wheels.py --python-version 3.12 --dest wheels

Copy ``wheels/`` and the checkout there, then, without network:

    python -m pip install --no-index --no-deps --target /tmp/site wheels/*.whl
    PYTHONPATH=/tmp/site:$PWD python benchmarks/gpu_check.py --output-folder out

The list is the closure of ``craft-modules``' requirements over the installed
distributions' metadata (markers evaluated for the target Python), minus
what the GPU machine already has (``--have``, with all it requires) and what
is never imported on the training path (``--skip``: SpeechBrain imports
``huggingface_hub`` and ``sentencepiece`` only to fetch hub models and
tokenizers). ``--list`` prints it without downloading.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import importlib.metadata as metadata
import subprocess
import sys

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

#: What a CUDA PyTorch image ships (with everything these require).
HAVE = ("torch", "torchaudio", "numpy")
#: Required by SpeechBrain's metadata, never imported when training or tagging.
SKIP = ("huggingface-hub", "sentencepiece")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def _requirements(name, environment):
    """Canonical names a distribution requires, extras ignored, markers evaluated."""
    names = []
    for line in metadata.distribution(name).requires or ():
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or marker.evaluate({**environment, "extra": ""}):
            names.append(canonicalize_name(requirement.name))
    return names


def closure(roots, environment, stop=()):
    """Every installed distribution reachable from ``roots`` (their names, canonical).

    Arguments
    ---------
    roots : iterable of str
        Distribution names.
    environment : dict
        Marker environment (``packaging.markers.default_environment()``,
        with the target's ``python_version`` and ``python_full_version``).
    stop : iterable of str
        Distributions neither included nor followed.

    Returns
    -------
    set of str

    Example
    -------
    >>> sorted(closure(["packaging"], default_environment()))
    ['packaging']
    """
    stop = {canonicalize_name(s) for s in stop}
    found, todo = set(), [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in found or name in stop:
            continue
        try:
            requirements = _requirements(name, environment)
        except metadata.PackageNotFoundError:
            continue  # not installed here (an optional or other-platform need)
        found.add(name)
        todo.extend(requirements)
    return found


def wheel_pins(python_version, have=HAVE, skip=SKIP, project="craft-modules"):
    """``name==version`` of every distribution the offline machine needs.

    Arguments
    ---------
    python_version : str
        The target's ``major.minor`` (e.g. ``3.12``).
    have : iterable of str
        Distributions the target already has (their requirements too).
    skip : iterable of str
        Distributions left out although required.
    project : str
        The root distribution.

    Returns
    -------
    list of str
        Sorted pins at the versions installed here.
    """
    environment = default_environment()
    environment.update(
        python_version=python_version, python_full_version=f"{python_version}.0"
    )
    present = closure(have, environment)
    needed = closure(
        _requirements(project, environment), environment, present | set(skip)
    )
    return sorted(f"{name}=={metadata.version(name)}" for name in needed)


def main(argv=None):
    """Prints the pins, then downloads their wheels unless ``--list``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default="3.12", help="target major.minor")
    parser.add_argument("--dest", default="wheels")
    parser.add_argument("--have", nargs="*", default=list(HAVE))
    parser.add_argument("--skip", nargs="*", default=list(SKIP))
    parser.add_argument("--list", action="store_true", help="print, do not download")
    args = parser.parse_args(argv)
    pins = wheel_pins(args.python_version, args.have, args.skip)
    print("\n".join(pins))
    if args.list:
        return 0
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        "--only-binary=:all:", "--implementation", "cp",
        "--python-version", args.python_version, "-d", args.dest,
    ]  # fmt: skip
    for platform in PLATFORMS:
        command += ["--platform", platform]
    return subprocess.call(command + pins)


if __name__ == "__main__":
    sys.exit(main())
