"""Confidence-based membership-inference attack (MIA-efficacy) of the standard unlearning protocol."""

from __future__ import annotations

import numpy as np
from sklearn.svm import SVC


def _check(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError(f"mia_efficacy: {name} is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"mia_efficacy: {name} contains non-finite values")
    return x


def mia_efficacy(retain_conf: np.ndarray, test_conf: np.ndarray, forget_conf: np.ndarray) -> float:
    """MIA-efficacy in percent: share of forget examples an SVC attack labels as non-members.

    Protocol: shadow members = the first N retain examples, N = len(test_conf) (if fewer than N retain
    examples are given, all of them are used); shadow non-members = the test set used for TA. The
    feature is each example's softmax probability of its true label. An ``SVC(C=3, gamma="auto",
    kernel="rbf")`` is fit on members (1) vs non-members (0) and applied to the forget set.

    Higher means the forget set looks less like training data (more forgetting), but the target is
    Retrain's value (about 100 for class-wise forgetting, about 13 for 10% random forgetting on
    CIFAR-10), not 100. Raises ``ValueError`` on empty or non-finite inputs.
    """
    retain = _check("retain_conf", retain_conf)
    test = _check("test_conf", test_conf)
    forget = _check("forget_conf", forget_conf)
    members = retain[: test.size]
    x = np.concatenate([members, test])[:, None]
    y = np.concatenate([np.ones(members.size, np.int64), np.zeros(test.size, np.int64)])
    if np.unique(y).size < 2:  # unreachable with the checks above; kept as a guard for SVC
        raise ValueError("mia_efficacy needs both members and non-members")
    clf = SVC(C=3, gamma="auto", kernel="rbf")
    clf.fit(x, y)
    pred = clf.predict(forget[:, None])
    return float(100.0 * np.mean(pred == 0))
