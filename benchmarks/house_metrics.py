"""How readable is the code layout? The path of one training batch, and module sizes.

Two measures of the project's layout, meant to be compared before and after
a reorganisation of the package:

1. **The path of one training batch** through the ESC-50 recipe. The script
   generates a tiny ESC-50 dataset (3 classes, 4 clips each, 1 s at 16 kHz),
   runs ``recipes/ESC50/train.py hparams/ast.yaml`` (or the YAML given with
   ``--hparams``) in this process with tiny overrides (one fold, one epoch,
   batch 4, ``num_workers=0`` so the data pipeline runs in-process, on the
   CPU), and with :func:`sys.setprofile` records, for the FIRST training
   batch:

   * ``route``: the project frames on the call stack when the Brain's
     ``fit_batch`` is entered, from ``train.py``'s module code down to
     ``fit_batch`` (the way into the training step);
   * ``step``: every project function called from the moment ``fit_batch``
     is entered until the loss is returned by its (first) call of
     ``compute_objectives`` (model forward, features, embeddings, masks,
     augmentations, losses: all nested calls);
   * ``headline``: the union of the two, the files and functions a training
     batch passes through from ``train.py`` to the loss;
   * ``loading``: the project functions the DataLoader ran in-process for
     that batch (sampler, dataset pipelines, collate), kept out of the
     headline.

   The run stops as soon as that loss is returned (a private exception
   raised from the profiler), so it is short. A *project* function is one
   whose code lies in a file under this repository's ``craft_modules/`` or
   ``recipes/`` folder, wherever the package puts it: no ``craft_modules``
   module path is imported by name except the data generator (tried as
   ``craft_modules.synth``, ``craft_modules.testing.synth`` and
   ``tests.synth``). A function is identified by its file and qualified
   name; comprehension and generator-expression code objects are counted as
   part of their enclosing function (Python 3.12 inlines comprehensions).

2. **The largest modules**: for every ``.py`` file under ``craft_modules/``
   and ``recipes/``, the lines of code, i.e. lines holding at least one token
   that is not a comment and not part of a docstring (module, class or
   function docstrings, found with :mod:`ast`; comments found with
   :mod:`tokenize`). Blank lines do not count. The 10 largest files and the
   total are reported.

Results are written as JSON (to ``--output``, default stdout) and summarised
in a short table on stdout (on stderr when the JSON goes to stdout).

Usage:
    python benchmarks/house_metrics.py --output /tmp/house_before.json
    python benchmarks/house_metrics.py --hparams hparams/craft.yaml --output /tmp/craft.json
    python benchmarks/house_metrics.py --no-trace   # module sizes only

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import argparse
import ast
import contextlib
import importlib
import importlib.util
import io
import json
import os
import platform
import re
import runpy
import subprocess
import sys
import tempfile
import time
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FOLDERS = ("craft_modules", "recipes")
RECIPE = ROOT / "recipes" / "ESC50" / "train.py"
HPARAMS = "hparams/ast.yaml"
SYNTH_MODULES = ("craft_modules.synth", "craft_modules.testing.synth", "tests.synth")
TINY_OVERRIDES = [
    "--model_size=tiny",
    "--depth=1",
    "--num_workers=0",
    "--device=cpu",
    "--clip_duration=1.0",
    "--number_of_epochs=1",
    "--folds=[1]",
    "--batch_size=4",
    "--n_classes=3",
]
# Added when the YAML has the key (CRAFT's SWaB fusion needs a layer <= depth).
TINY_IF_PRESENT = {"fusion_layer": "--fusion_layer=0"}
# Token types that are not code: comments and layout.
NON_CODE_TOKENS = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}
COMPREHENSIONS = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}


# ------------------------------------------------------------------ line counts
def docstring_spans(tree, lines):
    """``((row, col), (end_row, end_col))`` of every docstring in ``tree``.

    Columns are character offsets (as :mod:`tokenize` gives them), converted
    from the UTF-8 byte offsets of :mod:`ast`.

    Arguments
    ---------
    tree : ast.Module
        The parsed file.
    lines : list of str
        The file's lines (for the byte-to-character conversion).

    Returns
    -------
    list of tuple
        One span per docstring.
    """

    def chars(row, byte_col):
        return len(lines[row - 1].encode("utf-8")[:byte_col].decode("utf-8", "replace"))

    spans = []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(tree):
        if not isinstance(node, kinds) or not node.body:
            continue
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            value = first.value
            spans.append(
                (
                    (value.lineno, chars(value.lineno, value.col_offset)),
                    (value.end_lineno, chars(value.end_lineno, value.end_col_offset)),
                )
            )
    return spans


def count_code_lines(source):
    """Lines of code of a Python source: not blank, not comment, not docstring.

    A line counts when it holds part of a token other than a comment, a
    docstring or layout (newlines, indentation); the inner lines of a
    multi-line string that is not a docstring count as code.

    Arguments
    ---------
    source : str
        Python source text.

    Returns
    -------
    int
        The number of code lines.

    Example
    -------
    >>> count_code_lines("'Doc.'\\n\\n# note\\nx = 1  # one\\n")
    1
    """
    lines = source.splitlines()
    spans = docstring_spans(ast.parse(source), lines)
    code = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in NON_CODE_TOKENS:
            continue
        if token.type == tokenize.STRING and any(
            start <= token.start and token.end <= end for start, end in spans
        ):
            continue
        code.update(range(token.start[0], token.end[0] + 1))
    return len(code)


def project_files(root=ROOT):
    """Every ``.py`` file under the project folders of ``root``, sorted."""
    files = []
    for folder in PROJECT_FOLDERS:
        files.extend(
            p for p in Path(root, folder).rglob("*.py") if "__pycache__" not in p.parts
        )
    return sorted(files)


def module_sizes(root=ROOT, top=10):
    """Code lines of every project module; the ``top`` largest and the total.

    Arguments
    ---------
    root : str or Path
        Repository root (its ``craft_modules/`` and ``recipes/`` are read).
    top : int
        How many of the largest modules to list.

    Returns
    -------
    dict
        ``total``, ``n_files``, ``largest`` (``[{"file", "loc"}]``, largest
        first) and ``per_file`` (file -> loc).
    """
    sizes = {}
    for path in project_files(root):
        source = path.read_text(encoding="utf-8")
        sizes[path.relative_to(root).as_posix()] = count_code_lines(source)
    ranked = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
    return {
        "total": sum(sizes.values()),
        "n_files": len(sizes),
        "largest": [{"file": f, "loc": n} for f, n in ranked[:top]],
        "per_file": dict(sorted(sizes.items())),
    }


# --------------------------------------------------------------------- tracing
class _StopTrace(BaseException):
    """Raised by the profiler once the first batch's loss is returned."""


class BatchTracer:
    """A :func:`sys.setprofile` hook recording the first training batch.

    Arguments
    ---------
    root : Path
        Repository root: project code is code in files under its
        ``craft_modules/`` or ``recipes/`` folders.
    brain_class : type
        Base class of the Brains (``speechbrain.Brain``): a ``fit_batch``
        call counts when its ``self`` is an instance.
    loader_codes : dict
        Code object -> role (``"iter"`` for ``DataLoader.__iter__``,
        ``"next"`` for the loader iterator's ``__next__``).
    """

    def __init__(self, root, brain_class, loader_codes):
        self.prefixes = tuple(str(Path(root, f)) + os.sep for f in PROJECT_FOLDERS)
        self.root = Path(root)
        self.brain_class = brain_class
        self.loader_codes = loader_codes
        self._files = {}
        self.loader_depth = 0
        self.loading = {}  # the current loader iteration's project calls
        self.route = None  # the stack when fit_batch was entered
        self.step = {}  # function -> calls, first-call order
        self.brain = None
        self.objectives_frame = None
        self.done = False

    def relative(self, filename):
        """The repository-relative path of a project file, else None (cached)."""
        try:
            return self._files[filename]
        except KeyError:
            rel = None
            # "<frozen os>", "<string>": code without a file of its own.
            path = "" if filename.startswith("<") else os.path.realpath(filename)
            if path.startswith(self.prefixes):
                rel = Path(path).relative_to(self.root).as_posix()
            self._files[filename] = rel
            return rel

    def function(self, code):
        """``(file, qualified name)`` of a project code object, else None."""
        rel = self.relative(code.co_filename)
        if rel is None or code.co_name in COMPREHENSIONS:
            return None
        return rel, getattr(code, "co_qualname", code.co_name)

    def __call__(self, frame, event, arg):
        if event == "call":
            self._on_call(frame)
        elif event == "return":
            self._on_return(frame)

    def _on_call(self, frame):
        code = frame.f_code
        role = self.loader_codes.get(code)
        if role is not None and self.route is None:
            if role == "iter" and self.loader_depth == 0:
                self.loading = {}  # a new pass over a loader
            self.loader_depth += 1
            return
        if self.route is None:
            if code.co_name == "fit_batch" and isinstance(
                frame.f_locals.get("self"), self.brain_class
            ):
                self._enter_fit_batch(frame)
            elif self.loader_depth:
                key = self.function(code)
                if key is not None:
                    self.loading[key] = self.loading.get(key, 0) + 1
            return
        key = self.function(code)
        if key is not None:
            self.step[key] = self.step.get(key, 0) + 1
        if (
            self.objectives_frame is None
            and code.co_name == "compute_objectives"
            and frame.f_locals.get("self") is self.brain
        ):
            self.objectives_frame = frame

    def _on_return(self, frame):
        if self.route is None:
            if self.loader_codes.get(frame.f_code) is not None:
                self.loader_depth = max(0, self.loader_depth - 1)
        elif frame is self.objectives_frame:
            self.done = True
            raise _StopTrace

    def _enter_fit_batch(self, frame):
        self.brain = frame.f_locals["self"]
        fit_batch = self.function(frame.f_code)
        stack = []
        while frame is not None:
            stack.append(frame)
            frame = frame.f_back
        stack.reverse()
        first = next(
            (i for i, f in enumerate(stack) if self.function(f.f_code)), len(stack)
        )
        stack = stack[first:]  # from the recipe's module code on
        self.route = []
        self.route_stack = []
        for f in stack:
            key = self.function(f.f_code)
            name = getattr(f.f_code, "co_qualname", f.f_code.co_name)
            self.route_stack.append(
                {
                    "file": self.relative(f.f_code.co_filename)
                    or short_path(f.f_code.co_filename),
                    "function": name,
                    "line": f.f_lineno,
                    "project": key is not None,
                }
            )
            if key is not None and key not in self.route:
                self.route.append(key)
        if fit_batch is not None:
            self.step[fit_batch] = 1  # fit_batch itself


def short_path(filename):
    """A site-packages path from the package folder on (for the route stack)."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1 :])
    return filename


def tiny_overrides(yaml_path):
    """:data:`TINY_OVERRIDES`, plus those of :data:`TINY_IF_PRESENT` the YAML has a key for.

    Arguments
    ---------
    yaml_path : str or Path
        The recipe's YAML.

    Returns
    -------
    list of str
        Command-line overrides.
    """
    text = Path(yaml_path).read_text(encoding="utf-8")
    extra = [
        override
        for key, override in TINY_IF_PRESENT.items()
        if re.search(rf"^{key}:", text, re.MULTILINE)
    ]
    return [*TINY_OVERRIDES, *extra]


def find_generator():
    """``make_esc50`` from the first of :data:`SYNTH_MODULES` that imports."""
    errors = []
    for name in SYNTH_MODULES:
        try:
            return importlib.import_module(name).make_esc50, name
        except (ImportError, AttributeError) as error:
            errors.append(f"{name}: {error}")
    raise RuntimeError("no ESC-50 generator found: " + "; ".join(errors))


def summarise(functions):
    """Counts and lists of a set of ``(file, function)`` pairs (in order)."""
    functions = list(dict.fromkeys(functions))
    files = list(dict.fromkeys(f for f, _ in functions))
    return {
        "n_files": len(files),
        "n_functions": len(functions),
        "files": files,
        "functions": [{"file": f, "function": q} for f, q in functions],
    }


def trace_first_batch(root=ROOT, workdir=None, hparams=HPARAMS):
    """Runs the ESC-50 recipe on tiny data and traces its first training batch.

    Arguments
    ---------
    root : Path
        Repository root.
    workdir : str, optional
        Folder for the data and the run (default: a temporary folder).
    hparams : str
        The recipe's YAML, relative to ``recipes/ESC50/``.

    Returns
    -------
    dict
        ``route``, ``step``, ``headline`` and ``loading`` summaries, the
        full ``route_stack``, ``step_calls`` and the ``command`` run.
    """
    import speechbrain as sb  # after the module docstring's --help
    import torch.utils.data.dataloader as dl

    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="house_metrics_") as tmp:
            return trace_first_batch(root, tmp, hparams)

    spec = importlib.util.find_spec("craft_modules")
    if spec is None or not str(Path(spec.origin).resolve()).startswith(str(root)):
        raise RuntimeError(
            f"craft_modules is imported from {spec and spec.origin}, not from "
            f"{root}: put {root} first on PYTHONPATH"
        )
    make_esc50, generator = find_generator()
    data = os.path.join(workdir, "ESC-50")
    make_esc50(data, n_classes=3, clips_per_class=4, sample_rate=16000, duration=1.0)

    recipe = Path(root, "recipes", "ESC50", "train.py")
    argv = [
        str(recipe),
        hparams,
        f"--data_folder={data}",
        f"--output_folder={os.path.join(workdir, 'run')}",
        *tiny_overrides(recipe.parent / hparams),
    ]
    loader_codes = {dl.DataLoader.__iter__.__code__: "iter"}
    base_iter = getattr(dl, "_BaseDataLoaderIter", None)
    if base_iter is not None:
        loader_codes[base_iter.__next__.__code__] = "next"
    tracer = BatchTracer(root, sb.Brain, loader_codes)

    saved = sys.argv, list(sys.path), os.getcwd(), set(sys.modules)
    sys.argv = argv
    sys.path.insert(0, str(recipe.parent))  # as `python train.py` does
    os.chdir(recipe.parent)
    start = time.perf_counter()
    try:
        # The recipe's prints go to stderr: stdout may carry the JSON.
        with contextlib.redirect_stdout(sys.stderr):
            sys.setprofile(tracer)
            try:
                runpy.run_path(str(recipe), run_name="__main__")
            except _StopTrace:
                pass
            finally:
                sys.setprofile(None)
    finally:
        elapsed = time.perf_counter() - start
        sys.argv, sys.path[:] = saved[0], saved[1]
        os.chdir(saved[2])
        for name in set(sys.modules) - saved[3]:
            if name == "esc50_prepare":  # the recipe's own folder's module
                del sys.modules[name]
    if tracer.route is None:
        raise RuntimeError("the recipe ended without a training batch")
    if not tracer.done:
        raise RuntimeError("the first batch's compute_objectives never returned")

    headline = tracer.route + [k for k in tracer.step if k not in tracer.route]
    return {
        "command": ["python", "train.py", *argv[1:]],
        "cwd": recipe.parent.relative_to(root).as_posix(),
        "hparams": hparams,
        "generator": generator,
        "trace_seconds": round(elapsed, 2),
        "route": summarise(tracer.route),
        "step": summarise(tracer.step),
        "headline": summarise(headline),
        "loading": summarise(tracer.loading),
        "route_stack": tracer.route_stack,
        "step_calls": [
            {"file": f, "function": q, "calls": n} for (f, q), n in tracer.step.items()
        ],
    }


# ------------------------------------------------------------------- reporting
def git_commit(root):
    """The checked-out commit (with ``+dirty``), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return None
    return (commit + ("+dirty" if dirty else "")) or None


def print_table(report, out):
    """A short human summary of ``report``."""
    trace = report.get("batch_path")
    if trace:
        hparams = trace.get("hparams", HPARAMS)
        print(f"Path of one training batch (ESC-50, {hparams})", file=out)
        print(f"  {'part':<36}{'files':>6}{'functions':>11}", file=out)
        for key, label in [
            ("route", "(a) route train.py -> fit_batch"),
            ("step", "(b) fit_batch -> loss"),
            ("headline", "(a) + (b) headline"),
            ("loading", "loading (not in headline)"),
        ]:
            part = trace[key]
            print(
                f"  {label:<36}{part['n_files']:>6}{part['n_functions']:>11}",
                file=out,
            )
        print(f"  traced in {trace['trace_seconds']:.1f} s", file=out)
    sizes = report["module_sizes"]
    print(
        f"Largest modules (code lines; {sizes['n_files']} files, "
        f"{sizes['total']} in total)",
        file=out,
    )
    for entry in sizes["largest"]:
        print(f"  {entry['loc']:>6}  {entry['file']}", file=out)


def main(argv=None):
    """Measures, writes the JSON and prints the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", help="JSON file (default: stdout)")
    parser.add_argument(
        "--no-trace", action="store_true", help="skip the ESC-50 batch trace"
    )
    parser.add_argument(
        "--hparams",
        default=HPARAMS,
        help=f"ESC-50 YAML traced, relative to recipes/ESC50/ (default {HPARAMS})",
    )
    parser.add_argument("--top", type=int, default=10, help="largest modules listed")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    report = {
        "commit": git_commit(ROOT),
        "python": platform.python_version(),
    }
    if not args.no_trace:
        report["batch_path"] = trace_first_batch(ROOT, hparams=args.hparams)
    report["module_sizes"] = module_sizes(ROOT, args.top)
    report["seconds"] = round(time.perf_counter() - start, 2)

    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print_table(report, sys.stdout)
        print(f"Written {args.output} in {report['seconds']:.1f} s", file=sys.stdout)
    else:
        print_table(report, sys.stderr)
        print(text)


if __name__ == "__main__":
    main()
