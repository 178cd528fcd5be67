"""Cross-validation folds for a dataset without official ones.

:func:`assign_folds` draws k folds from the seed with scikit-learn,
stratified by class (each fold gets about 1/k of every class) and, when
each clip has a source (a speaker, a recording cut into clips), grouped so
that one source's clips never straddle two folds
(:class:`sklearn.model_selection.StratifiedGroupKFold`; without sources
:class:`sklearn.model_selection.StratifiedKFold`). :func:`source_groups`
reads the sources from the file names with a regular expression.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import re

import numpy as np
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def source_groups(names, group_regex):
    """The source of each file name: the regex's first group, else its whole match.

    A name the regex does not match is its own source (with one warning
    counting such names); a regex that matches no name at all is an error.

    Arguments
    ---------
    names : list of str
        File names (e.g. ``spk3_017.wav``).
    group_regex : str
        A regular expression, searched in each name (:func:`re.search`).

    Returns
    -------
    list of str
        One source id per name.

    Raises
    ------
    ValueError
        If the regex does not compile or matches none of the names.

    Example
    -------
    >>> source_groups(["spk1_a.wav", "spk1_b.wav", "spk2_a.wav"], r"spk(\\d+)_")
    ['1', '1', '2']
    >>> source_groups(["dog_1.wav", "cat_2.wav"], r"^[a-z]+")
    ['dog', 'cat']
    >>> source_groups(["a.wav", "b.wav"], r"spk(\\d+)")
    Traceback (most recent call last):
        ...
    ValueError: group_regex 'spk(\\\\d+)' matches none of the 2 file names (e.g. 'a.wav')
    """
    try:
        pattern = re.compile(group_regex)
    except re.error as err:
        raise ValueError(
            f"group_regex {group_regex!r} is not a valid regex: {err}"
        ) from err
    groups, unmatched = [], 0
    for name in names:
        match = pattern.search(name)
        if match is None:
            unmatched += 1
            groups.append(f"<unmatched>/{name}")
        elif match.groups() and match.group(1) is not None:
            groups.append(match.group(1))
        else:
            groups.append(match.group(0))
    if names and unmatched == len(names):
        raise ValueError(
            f"group_regex {group_regex!r} matches none of the {len(names)} "
            f"file names (e.g. {names[0]!r})"
        )
    if unmatched:
        logger.warning(
            "group_regex %r does not match %d of %d file names (e.g. %r): "
            "each of those is its own source",
            group_regex,
            unmatched,
            len(names),
            next(n for n, g in zip(names, groups) if g.startswith("<unmatched>/")),
        )
    return groups


def assign_folds(targets, n_folds, seed, groups=None):
    """Fold number (1 to ``n_folds``) of each clip, stratified by class, grouped by source.

    Arguments
    ---------
    targets : list of int
        Each clip's class.
    n_folds : int
        Number of folds (at least 2).
    seed : int
        The ``random_state`` of the shuffled split: the same seed and data
        give the same folds.
    groups : list of str, optional
        Each clip's source; clips of one source get one fold.

    Returns
    -------
    list of int
        One fold per clip, in the order of ``targets``.

    Raises
    ------
    ValueError
        If there are fewer clips (or sources) than folds.

    Example
    -------
    >>> folds = assign_folds([0, 0, 0, 1, 1, 1], n_folds=3, seed=0)
    >>> sorted(folds)
    [1, 1, 2, 2, 3, 3]
    >>> assign_folds([0, 0, 0, 1, 1, 1], 3, seed=0) == folds
    True
    >>> grouped = assign_folds([0, 0, 1, 1], 2, seed=0, groups=["a", "a", "b", "b"])
    >>> grouped[0] == grouped[1] and grouped[2] == grouped[3]
    True
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    n_folds = int(n_folds)
    targets = np.asarray(targets)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if len(targets) < n_folds:
        raise ValueError(f"{len(targets)} clips cannot fill n_folds={n_folds} folds")
    if groups is not None:
        n_sources = len(set(groups))
        if n_sources < n_folds:
            raise ValueError(
                f"{n_sources} sources (group_regex) cannot fill n_folds={n_folds} "
                "folds: lower n_folds or loosen group_regex"
            )
        splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    folds = np.zeros(len(targets), dtype=int)
    for fold, (_, held_out) in enumerate(
        splitter.split(np.zeros(len(targets)), targets, groups), start=1
    ):
        folds[held_out] = fold
    return folds.tolist()
