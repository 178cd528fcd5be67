"""benchmarks/offline_wheels.py: what a GPU machine without network must be sent."""

import pytest

from craft_modules.testing.scripts import load_script


@pytest.fixture(scope="module")
def offline_wheels():
    return load_script("benchmarks/offline_wheels.py")


def test_the_pins_hold_what_the_recipes_import_and_not_what_the_image_has(
    offline_wheels,
):
    pins = offline_wheels.wheel_pins("3.12")
    names = {pin.split("==")[0] for pin in pins}
    # What gpu_check and its recipe runs import (traced on the CPU).
    for needed in (
        "speechbrain",
        "hyperpyyaml",
        "ruamel-yaml",
        "ruamel-yaml-clib",
        "pyyaml",
        "tqdm",
        "packaging",
        "scipy",
        "scikit-learn",
        "joblib",
        "threadpoolctl",
        "soundfile",
        "cffi",
    ):
        assert needed in names, needed
    assert "speechbrain==1.1.2" in pins
    # A CUDA PyTorch image has these and all they require; the skipped ones
    # and what only they require are not followed.
    for present in ("torch", "torchaudio", "numpy", "triton", "sympy", "filelock"):
        assert present not in names
    assert not any(name.startswith("nvidia-") for name in names)
    assert not names & {"huggingface-hub", "sentencepiece", "hf-xet"}
    assert pins == sorted(pins) and all("==" in pin for pin in pins)


def test_list_prints_the_pins_without_downloading(offline_wheels, capsys, tmp_path):
    dest = tmp_path / "wheels"
    assert offline_wheels.main(["--list", "--dest", str(dest)]) == 0
    printed = capsys.readouterr().out.split()
    assert "speechbrain==1.1.2" in printed and not dest.exists()


def test_doctests(offline_wheels):
    import doctest

    result = doctest.testmod(offline_wheels)
    assert result.attempted >= 1 and result.failed == 0
