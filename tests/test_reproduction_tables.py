"""The reproduction tables of recipes/AudioSet/README.md and recipes/ESC50/README.md.

Each README has one table (its header has a ``Built (checked)`` column) with
one line per row of the CRAFT paper's Tables 1 to 8: the pretraining and
fine-tuning commands (inline code) and what they must build, e.g.
``pretrain method=pswacl kernels=11,51,101; finetune fusion=swab kernels=11,51,101
bottlenecks=64 layer=4``. Every command runs here with ``--dry_run=True`` on
generated data (:mod:`craft_modules.testing.synth`), with the tiny model
(12 blocks, so that every fusion layer of Table 5d exists) unless the row
sets ``model_size``, and its printed summary must match the row; the
fine-tuning line must read the folder its row's pretraining writes, and the
ensemble line must average the row's fine-tuning runs.

The commands run in this process (``runpy``), from one temporary folder as
the working directory, so that the tables' relative ``results/...`` folders
resolve there and a pretraining command shared by several rows runs once:
about half a second each instead of the few seconds of a fresh interpreter.
"""

import contextlib
import io
import json
import os
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from craft_modules.testing.synth import make_audioset, make_esc50
from craft_modules.training.dry_run import MARKER

ROOT = Path(__file__).resolve().parents[1]
READMES = {
    "AudioSet": ROOT / "recipes" / "AudioSet" / "README.md",
    "ESC50": ROOT / "recipes" / "ESC50" / "README.md",
}
#: Rows each table must at least have (the test cannot pass on an empty table).
MIN_ROWS = {"AudioSet": 20, "ESC50": 10}
#: Run options of every dry run (small data, CPU, 1 s clips).
QUICK = ["--num_workers=0", "--device=cpu", "--clip_duration=1.0", "--dry_run=True"]
#: Per-recipe overrides for the generated data: class counts, a mask that
#: fits the 1 s grid.
EXTRA = {
    "recipes/AudioSet/pretrain.py": ["--mask_patch=20"],
    "recipes/AudioSet/train.py": ["--n_classes=4"],
    "recipes/ESC50/train.py": ["--n_classes=3"],
}
#: Built-column keys -> dry-run summary keys.
KEYS = {
    "method": "method",
    "fusion": "fusion",
    "kernels": "msae_kernels",
    "bottlenecks": "n_bottlenecks",
    "layer": "fusion_layer",
    "batch": "batch_size",
    "lr": "lr",
    "dim": "embed_dim",
    "pretrained": "pretrained_path",
}
#: Keys every row must name.
REQUIRED = {
    "pretrain": {"method", "kernels"},
    "finetune": {"fusion", "kernels", "bottlenecks", "layer"},
}


def table_rows(readme):
    """``(paper, pretraining, fine-tuning, ensemble, built)`` per table line."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("|") and "Built (checked)" in line
    )
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        commands = {
            key: re.findall(r"`(python [^`]+)`", cells[column])
            for key, column in (
                ("pretrain", "Pretraining"),
                ("finetune", "Fine-tuning"),
            )
        }
        ensemble = [c for c in commands["finetune"] if "ensemble.py" in c]
        finetune = [c for c in commands["finetune"] if c not in ensemble]
        rows.append(
            (
                cells[header[0]],
                commands["pretrain"],
                finetune,
                ensemble,
                parse_built(cells["Built (checked)"]),
            )
        )
    return rows


def parse_built(cell):
    """``{"pretrain": {...}, "finetune": {...}}`` of a Built cell, values typed."""
    built = {}
    for part in cell.split(";"):
        stage, *pairs = part.split()
        values = {}
        for pair in pairs:
            key, value = pair.split("=", 1)
            if value == "-":
                values[key] = "" if key == "pretrained" else None
            elif key == "kernels":
                values[key] = [int(k) for k in value.split(",")]
            elif key == "lr":
                values[key] = float(value)
            elif key in ("method", "fusion"):
                values[key] = value
            else:
                values[key] = int(value)
        built[stage] = values
    return built


ROWS = [
    pytest.param(name, *row, id=f"{name}-{i}-" + re.sub(r"\W+", "_", row[0])[:48])
    for name, readme in READMES.items()
    for i, row in enumerate(table_rows(readme))
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The working directory of every dry run, with generated data folders."""
    root = tmp_path_factory.mktemp("tables")
    make_audioset(
        str(root / "AudioSet"),
        n_classes=4,
        n_balanced=6,
        n_eval=4,
        n_unbalanced=4,  # the pretraining and full-set lines read it
        duration=1.0,
    )
    make_esc50(
        str(root / "ESC-50"),
        n_classes=3,
        clips_per_class=5,
        sample_rate=16000,
        duration=1.0,
    )
    return root


_CACHE = {}


def dry_run(command, workdir):
    """Runs a table's command with ``--dry_run=True``; its summary (cached)."""
    if command in _CACHE:
        return _CACHE[command]
    words = shlex.split(command)
    assert words[0] == "python" and words[1] in EXTRA, command
    script = ROOT / words[1]
    args = [
        w.replace("/data/AudioSet", str(workdir / "AudioSet")).replace(
            "/data/ESC-50", str(workdir / "ESC-50")
        )
        for w in words[2:]
    ]
    if not any(a.startswith("--model_size=") for a in args):
        args.append("--model_size=tiny")
    args += QUICK + EXTRA[words[1]]
    saved = sys.argv, list(sys.path), os.getcwd()
    out = io.StringIO()
    try:
        sys.argv = [str(script), *args]
        sys.path.insert(0, str(script.parent))
        os.chdir(workdir)
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(script), run_name="__main__")
    except Exception as error:  # the row names a model the code cannot build
        raise AssertionError(f"{command} does not build: {error!r}") from error
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        os.chdir(saved[2])
    lines = [x for x in out.getvalue().splitlines() if x.startswith(MARKER)]
    assert len(lines) == 1, f"{command}: no dry-run summary\n{out.getvalue()[-2000:]}"
    _CACHE[command] = json.loads(lines[0][len(MARKER) :])
    return _CACHE[command]


def check_built(summary, expected, command):
    for key, value in expected.items():
        got = summary[KEYS[key]]
        if key == "pretrained" and value == "":
            assert got == "", f"{command}: reads {got}, the row says from scratch"
        else:
            assert got == value, f"{command}: {key} is {got!r}, the row says {value!r}"


@pytest.mark.parametrize("name, paper, pretrain, finetune, ensemble, built", ROWS)
def test_table_row_builds_what_it_names(
    name, paper, pretrain, finetune, ensemble, built, workdir
):
    """Each command builds the row's model; fine-tuning reads the row's pretraining."""
    assert finetune, f"{paper}: no fine-tuning command"
    assert len(pretrain) <= 1 and set(built) == {"finetune"} | (
        {"pretrain"} if pretrain else set()
    ), f"{paper}: one pretraining command and a Built part per stage"
    for stage, keys in REQUIRED.items():
        if stage in built:
            assert keys <= set(built[stage]), f"{paper}: Built lacks {keys}"
    pretrained = None
    if pretrain:
        pretrained = dry_run(pretrain[0], workdir)
        assert pretrained["class"] == "CraftPretrainer"
        check_built(pretrained, built["pretrain"], pretrain[0])
    outputs = []
    for command in finetune:
        summary = dry_run(command, workdir)
        assert summary["class"] == "CraftClassifier"
        check_built(summary, built["finetune"], command)
        outputs.append(str(Path(summary["output_folder"]).resolve()))
        if pretrained is None:
            assert summary["pretrained_path"] == "", command
            continue
        # The fine-tuning line reads the folder the pretraining line writes,
        # and a fine-tuned MSAE matches the pretrained one (or the weights
        # would not load).
        assert summary["pretrained_path"] in (
            pretrained["save_folder"],
            pretrained["output_folder"],
        ), (
            f"{command} reads {summary['pretrained_path']}, not {pretrained['save_folder']}"
        )
        if summary["msae_kernels"] and pretrained["msae_kernels"]:
            assert summary["msae_kernels"] == pretrained["msae_kernels"], command
        assert summary["embed_dim"] == pretrained["embed_dim"], command
    for command in ensemble:
        # recipes/AudioSet/ensemble.py RUN1 RUN2 ...: the row's fine-tuning runs.
        words = shlex.split(command)
        runs = [
            str((workdir / w).resolve()) for w in words[2:] if not w.startswith("--")
        ]
        assert len(runs) >= 2 and sorted(runs) == sorted(outputs), command


@pytest.mark.parametrize("name", sorted(READMES))
def test_tables_do_not_share_folders(name, workdir):
    """Two different commands never write the same folder (no resumed runs)."""
    rows = table_rows(READMES[name])
    assert len(rows) >= MIN_ROWS[name]
    by_folder = {}
    for _, pretrain, finetune, _, _ in rows:
        for command in {*pretrain, *finetune}:
            words = shlex.split(command)
            option = [w for w in words if w.startswith("--output_folder=")]
            folder = (
                option[0].split("=", 1)[1]
                if option
                else "default of " + " ".join(words[1:3])
            )
            by_folder.setdefault(folder, set()).add(command)
    shared = {f: c for f, c in by_folder.items() if len(c) > 1}
    assert not shared, shared


def test_main_readme_links_the_tables():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "recipes/AudioSet/README.md" in text
    assert "recipes/ESC50/README.md" in text
