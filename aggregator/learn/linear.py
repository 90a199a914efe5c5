"""A fitted linear classifier as plain arrays: what a logistic regression predicts with, and what a model file holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, softmax


@dataclass(frozen=True)
class Linear:
    """Classes, one weight row per class (one row, for the second class, when there are two) and intercepts.

    Predicts as scikit-learn's LogisticRegression does (sigmoid for two classes, softmax for more), but
    is only arrays and strings: saving it needs no pickle, and loading it runs no code.
    """

    classes: tuple[str, ...]
    coef: np.ndarray  # (1, n_features) for two classes, else (n_classes, n_features)
    intercept: np.ndarray  # (rows of coef,)

    @classmethod
    def from_sklearn(cls, clf: Any) -> Linear:
        """The arrays of a fitted LogisticRegression (its classes as strings)."""
        return cls(tuple(str(c) for c in clf.classes_.tolist()), np.asarray(clf.coef_, dtype=np.float64).copy(),
                   np.asarray(clf.intercept_, dtype=np.float64).copy())

    @classmethod
    def fit_on(cls, clf: Any, x: sp.csr_matrix, y: Any, weights: np.ndarray, columns: np.ndarray) -> Linear:
        """`clf` (a LogisticRegression) fitted on `columns` of `x` alone, as arrays over all of x's columns:
        the others weigh zero. Under an L2 penalty a column that is zero in every row gets weight zero
        anyway, so fitting without the columns the rows never use changes nothing but the solver's cost."""
        fitted = cls.from_sklearn(clf.fit(x[:, columns], y, sample_weight=weights))
        coef = np.zeros((fitted.coef.shape[0], x.shape[1]))
        coef[:, columns] = fitted.coef
        return cls(fitted.classes, coef, fitted.intercept)

    @property
    def classes_(self) -> np.ndarray:
        return np.array(self.classes, dtype=object)

    @property
    def coef_(self) -> np.ndarray:
        return self.coef

    def class_rows(self) -> np.ndarray:
        """One weight row per class (the two-class form stores one row, for the second class)."""
        return np.vstack([-self.coef[0], self.coef[0]]) if self.coef.shape[0] == 1 else self.coef

    def decision_function(self, x: sp.csr_matrix) -> np.ndarray:
        scores = np.asarray(x @ self.coef.T) + self.intercept
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, x: sp.csr_matrix) -> np.ndarray:
        scores = self.decision_function(x)
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        return softmax(scores, axis=1)

    def check(self, n_features: int) -> None:
        """ValueError unless the arrays fit together and `n_features` (a model file is untrusted)."""
        rows = 1 if len(self.classes) == 2 else len(self.classes)
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError("a classifier needs two or more distinct classes")
        if self.coef.shape != (rows, n_features) or self.intercept.shape != (rows,):
            raise ValueError(f"weights of shape {self.coef.shape} do not fit {len(self.classes)} classes and {n_features} features")
        if not (np.isfinite(self.coef).all() and np.isfinite(self.intercept).all()):
            raise ValueError("weights that are not finite numbers")
