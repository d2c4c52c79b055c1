"""The gradient-boosted trees of DCI and the downstream task, and a faster build of them.

disentanglement_lib scores DCI importances and downstream accuracy with scikit-learn's
``GradientBoostingClassifier()`` (Friedman, "Greedy function approximation: a gradient
boosting machine", Ann. Statist. 2001, Algorithm 6 "LK_TreeBoost"): 100 stages,
learning rate 0.1, regression trees of depth 3. At each stage, for each class k (one
tree in all for two classes), a tree is grown by exhaustive least-squares splits on the
pseudo-residuals r_ik = y_ik - p_k(x_i) of the multinomial deviance; each leaf's value
is then one Newton step, (K-1)/K * sum(r) / sum(p (1-p)) over the leaf's points
(sum(r) / sum(p (1-p)) for two classes), and the raw scores grow by 0.1 times it. The
start is the class prior (log p_k - mean log p, or the logit for two classes). A
feature's importance is the squared-error decrease of the splits on it, summed over
the trees and normalised to sum 1.

``boosting="fast"`` (``FastGradientBoostingClassifier``) runs the same algorithm with
LightGBM's tree learner growing the trees, as a reimplementation rather than a new
estimator (LightGBM's own boosting differs: Hessian-weighted gains and leaf values):

* LightGBM gets the pseudo-residuals as gradients and a Hessian of 1, so its split gain
  G_L^2/n_L + G_R^2/n_R - G^2/n is scikit-learn's squared-error decrease (and its
  "gain" importance is scikit-learn's importance up to a constant factor);
* every distinct value of a feature has its own histogram bin (no binning), so the
  candidate thresholds are scikit-learn's midpoints between consecutive values, and no
  limits are added (one point per leaf, no regularisation, depth 3 with 8 leaves:
  best-first growth to a full depth-3 tree gives the depth-first tree);
* after each stage every leaf's value is replaced by scikit-learn's Newton step (above),
  and the raw scores that make the next stage's residuals are kept here, in float64;
* each split's threshold is scikit-learn's, halfway between the node's own neighbouring
  points (LightGBM's lies between neighbouring values of all points);
* the codes are rounded to float32 first, as scikit-learn's trees do.

What differs is which of two equally good splits is taken. scikit-learn takes the first
best in a random feature order drawn at each node, with the float rounding of its running
sums deciding near-ties; LightGBM the lowest column, with gradients summed in float32.
The columns are put in one of 8 random orders per stage, so that ties spread over the
features as scikit-learn's do instead of piling onto the first ones. On one feature both
take the smallest of equal thresholds. Ties are the rule on a few points (residuals of a
few values), so training sets under ``min_points`` (1,000) points are fit by
scikit-learn itself, where it is cheap anyway. docs/benchmarks.md measures the agreement
of the scores and the speed.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

from disbench.metrics.utils import MetricInputError

BOOSTING = ("sklearn", "fast")


def check_boosting(boosting, where: str) -> str:
    if boosting not in BOOSTING:
        raise MetricInputError(f"{where} must be one of {', '.join(BOOSTING)}; got "
                               f"{boosting!r}.")
    return boosting


def make_boosting(boosting: str = "sklearn"):
    """A fresh, unfitted gradient-boosted-trees classifier with the reference's settings:
    scikit-learn's (``random_state=0``, see ``disbench.metrics.dci``) or the fast build."""
    if check_boosting(boosting, "boosting") == "sklearn":
        return GradientBoostingClassifier(random_state=0)
    return FastGradientBoostingClassifier()


DEPTH = 3
_INTERNAL = 2 ** DEPTH - 1  # nodes 0..6 of a depth-3 tree in heap order; leaves 7..14


def _newton_steps(residual: np.ndarray, leaf: np.ndarray, factor: float) -> np.ndarray:
    """Each leaf's Newton step factor * sum(r) / sum(p (1 - p)), with p = y - r, as
    scikit-learn's ``_update_terminal_regions``, 0 where the Hessian vanishes; for T
    trees at once: ``residual`` and ``leaf`` are (T, n), the result (T, 8)."""
    num_trees, size = residual.shape[0], 2 ** DEPTH
    group = (leaf + size * np.arange(num_trees)[:, None]).ravel()
    away = np.abs(residual).ravel()  # p for y = 0 and 1 - p for y = 1
    numerator = np.bincount(group, residual.ravel(), minlength=num_trees * size)
    denominator = np.bincount(group, away * (1.0 - away), minlength=num_trees * size)
    count = np.maximum(np.bincount(group, minlength=num_trees * size), 1)
    safe = np.abs(denominator / count) >= 1e-150
    step = np.zeros(num_trees * size)
    step[safe] = factor * numerator[safe] / denominator[safe]
    return step.reshape(num_trees, size)


def _heap_tree(node: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A LightGBM tree (``dump_model``'s ``tree_structure``) in heap order (node i sends
    x <= threshold to 2i+1): each internal node's split feature, whether LightGBM split
    it, and the leaf (0..7) of each LightGBM leaf index. A node left unsplit sends all its
    points to its first child."""
    feature = np.zeros(_INTERNAL, dtype=np.intp)
    split = np.zeros(_INTERNAL, dtype=bool)
    leaf_of = np.zeros(2 ** DEPTH, dtype=np.intp)

    def visit(node: dict, i: int) -> None:
        if "split_feature" not in node:
            while i < _INTERNAL:
                i = 2 * i + 1
            leaf_of[node.get("leaf_index", 0)] = i - _INTERNAL
            return
        feature[i], split[i] = node["split_feature"], True
        visit(node["left_child"], 2 * i + 1)
        visit(node["right_child"], 2 * i + 2)

    visit(node, 0)
    return feature, split, leaf_of


def _levels(leaf: np.ndarray):
    """For each level of depth-3 trees: the node (heap index) holding each point and
    whether the point goes on to the node's first child; ``leaf`` is (T, n) in 0..7."""
    heap = leaf + 2 ** DEPTH  # 1-based heap index of the leaf
    for level in range(DEPTH):
        yield (heap >> (DEPTH - level)) - 1, ((heap >> (DEPTH - 1 - level)) & 1) == 0


def _thresholds(x_by_feature: np.ndarray, feature: np.ndarray, split: np.ndarray,
                leaf: np.ndarray) -> np.ndarray:
    """scikit-learn's threshold of each split of T trees: halfway between the largest
    value on its left and the smallest on its right among the node's own points
    (LightGBM's lies between neighbouring values of all points), or the largest on the
    left where halfway rounds onto the right one. An unsplit node gets +inf.
    ``x_by_feature`` is x.T (contiguous), ``feature`` and ``split`` (T, 7), ``leaf``
    (T, n)."""
    num_trees, n = leaf.shape
    size = num_trees * _INTERNAL  # one slot more: where the other side's points go
    largest_left = np.full(size + 1, -np.inf)
    smallest_right = np.full(size + 1, np.inf)
    base = (np.arange(num_trees) * _INTERNAL)[:, None]
    for node, left in _levels(leaf):
        slot = node + base
        values = np.take(x_by_feature, np.take(feature, slot) * n + np.arange(n)).ravel()
        np.maximum.at(largest_left, np.where(left, slot, size).ravel(), values)
        np.minimum.at(smallest_right, np.where(left, size, slot).ravel(), values)
    largest_left, smallest_right = largest_left[:size], smallest_right[:size]
    with np.errstate(invalid="ignore"):  # unsplit nodes: -inf + inf
        threshold = largest_left / 2.0 + smallest_right / 2.0
    onto_right = threshold == smallest_right
    threshold[onto_right] = largest_left[onto_right]
    threshold = threshold.reshape(num_trees, _INTERNAL)
    threshold[~split] = np.inf
    return threshold


class _TreeGrowers:
    """LightGBM growing one stage of trees at a time on the codes, as scikit-learn would
    (module docstring), with the columns in one of a few random orders per stage.

    Between equally good splits on different features LightGBM takes the lowest column;
    scikit-learn the first in a random order it draws afresh at every node. Always the
    lowest would pile ties onto the first codes (and their importances); a random column
    order per stage spreads them as scikit-learn's do. Between equally good thresholds on
    one feature both take the smallest. The codes are shifted to values >= 1, clear of
    LightGBM's own bin around 0.
    """

    ORDERS = 8

    def __init__(self, x: np.ndarray, num_trees: int, learning_rate: float, num_threads: int):
        import lightgbm

        self.n, num_features = x.shape
        self.num_trees = num_trees
        self.num_threads = num_threads
        shifted = x - x.min(axis=0) + 1.0
        distinct = [np.unique(column).size for column in shifted.T]
        params = {
            "objective": "none", "num_class": num_trees, "learning_rate": learning_rate,
            "max_depth": DEPTH, "num_leaves": 2 ** DEPTH, "min_data_in_leaf": 1,
            "min_sum_hessian_in_leaf": 0.0, "lambda_l2": 0.0, "min_gain_to_split": 0.0,
            # LightGBM gives a feature of m distinct values m + 1 bins when it may
            "max_bin": max(distinct) + 1, "min_data_in_bin": 1, "bin_construct_sample_cnt": self.n,
            "use_missing": False, "feature_pre_filter": False, "num_threads": num_threads,
            "deterministic": True, "force_col_wise": True, "seed": 0, "verbose": -1,
        }
        self.rng = np.random.default_rng(0)
        self.orders = [self.rng.permutation(num_features) for _ in range(self.ORDERS)]
        self.columns = [np.ascontiguousarray(shifted[:, order]) for order in self.orders]
        self.boosters, self.stages = [], [0] * self.ORDERS
        for order, columns in zip(self.orders, self.columns):
            data = lightgbm.Dataset(columns, params=params).construct()
            if any(data.feature_num_bin(j) < distinct[c] for j, c in enumerate(order)):
                raise RuntimeError("LightGBM merged distinct values into one histogram bin: "
                                   "its splits would not be scikit-learn's")
            self.boosters.append(lightgbm.Booster(params, data))

    def grow(self, pseudo_residuals):
        """One stage of trees on the pseudo-residuals: each tree's split features and
        whether each node is split, (T, 7), and each point's leaf, (T, n); None when no
        tree has a split."""
        which = int(self.rng.integers(self.ORDERS))
        booster, order, stage = self.boosters[which], self.orders[which], self.stages[which]
        if booster.update(fobj=pseudo_residuals):
            return None
        self.stages[which] += 1
        dumped = booster.dump_model(start_iteration=stage, num_iteration=1)["tree_info"]
        column, split, leaf_of = map(np.stack, zip(*(_heap_tree(t["tree_structure"])
                                                     for t in dumped)))
        reached = booster.predict(self.columns[which], start_iteration=stage, num_iteration=1,
                                  pred_leaf=True, num_threads=self.num_threads)
        reached = np.ascontiguousarray(reached.reshape(self.n, self.num_trees).T)
        return order[column], split, leaf_of[np.arange(self.num_trees)[:, None], reached]

    def gains(self) -> np.ndarray:
        """Each feature's summed split gain over every tree grown."""
        gain = np.zeros(len(self.orders[0]))
        for booster, order, stage in zip(self.boosters, self.orders, self.stages):
            if stage:
                gain[order] += booster.feature_importance(importance_type="gain")
        return gain


class FastGradientBoostingClassifier:
    """scikit-learn's ``GradientBoostingClassifier()`` grown by LightGBM's tree learner
    (module docstring): ``fit``, ``predict``, ``decision_function``, ``classes_`` and
    ``feature_importances_`` as scikit-learn's.

    Training sets of fewer than ``min_points`` points are fit by scikit-learn itself: there
    it costs little, and ties between splits are the rule (a few points, residuals of a few
    values), which the two libraries' float rounding break differently
    (docs/benchmarks.md).
    """

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.1,
                 num_threads: int = 1, min_points: int = 1000):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_threads = num_threads
        self.min_points = min_points
        self._reference = self._fit_x = None

    @staticmethod
    def _as_trees_see_it(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32).astype(np.float64)

    def fit(self, x: np.ndarray, y: np.ndarray) -> FastGradientBoostingClassifier:
        if len(y) < self.min_points:
            self._reference = GradientBoostingClassifier(
                n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                random_state=0).fit(x, y)
            self.classes_ = self._reference.classes_
            self.feature_importances_ = self._reference.feature_importances_
            return self
        self._reference = None
        given, x = x, self._as_trees_see_it(x)
        self.classes_, labels = np.unique(np.asarray(y), return_inverse=True)
        num_classes, n = self.classes_.size, labels.size
        if num_classes < 2:
            raise ValueError("y needs samples of at least 2 classes; got one class")
        self._binary = num_classes == 2
        num_trees = 1 if self._binary else num_classes

        # scores, residuals and targets are (trees, points): LightGBM reads the transpose
        # of that layout without a copy
        eps = np.finfo(np.float64).eps
        prior = np.clip(np.bincount(labels) / n, eps, 1 - eps)
        if self._binary:
            self._init = np.log(prior[1:] / (1 - prior[1:]))
            target = labels[None, :].astype(np.float64)
            factor = 1.0
        else:
            self._init = np.log(prior) - np.log(prior).mean()
            target = np.eye(num_classes)[:, labels]
            factor = (num_classes - 1) / num_classes
        raw = np.repeat(self._init[:, None], n, axis=1)
        hessian = np.ones_like(raw)
        residual = np.empty_like(raw)

        def pseudo_residuals(_scores, _data):
            if self._binary:
                prob = 1.0 / (1.0 + np.exp(-raw))
            else:
                prob = np.exp(raw - raw.max(axis=0))
                prob /= prob.sum(axis=0)
            np.subtract(target, prob, out=residual)
            if self._binary:
                return -residual[0], hessian[0]
            return -residual.T, hessian.T

        growers = _TreeGrowers(x, num_trees, self.learning_rate, self.num_threads)
        x_by_feature = np.ascontiguousarray(x.T)
        features, thresholds, values = [], [], []
        for _ in range(self.n_estimators):
            grown = growers.grow(pseudo_residuals)
            if grown is None:
                break  # no tree of this stage has a split: nor will any later one
            feature, split, leaf = grown
            features.append(feature)
            thresholds.append(_thresholds(x_by_feature, feature, split, leaf))
            step = self.learning_rate * _newton_steps(residual, leaf, factor)
            values.append(step)
            raw += np.take_along_axis(step, leaf, axis=1)
        self._feature = np.concatenate(features) if features else np.zeros((0, _INTERNAL), int)
        self._threshold = np.concatenate(thresholds) if thresholds else np.zeros((0, _INTERNAL))
        self._value = np.concatenate(values) if values else np.zeros((0, 2 ** DEPTH))
        self._num_trees = num_trees
        self._fit_x, self._fit_raw = given, raw.T
        gain = growers.gains()
        total = gain.sum()
        self.feature_importances_ = gain / total if total > 0 else np.zeros(x.shape[1])
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        if self._reference is not None:
            return self._reference.decision_function(x).reshape(len(x), -1)
        if x is self._fit_x:  # the training points: their scores are kept from fitting
            return self._fit_raw.copy()
        x_by_feature = np.ascontiguousarray(self._as_trees_see_it(x).T)
        n = x_by_feature.shape[1]
        raw = np.tile(self._init, (n, 1))
        points = np.arange(n)
        chunk = 64 * self._num_trees
        for start in range(0, self._feature.shape[0], chunk):
            feature = self._feature[start:start + chunk]
            threshold = self._threshold[start:start + chunk]
            base = (np.arange(feature.shape[0]) * _INTERNAL)[:, None]
            node = np.zeros((feature.shape[0], n), dtype=np.intp)
            for _ in range(DEPTH):
                slot = node + base
                values = np.take(x_by_feature, np.take(feature, slot) * n + points)
                node = 2 * node + 2 - (values <= np.take(threshold, slot))
            leaf = node - _INTERNAL + (base // _INTERNAL) * 2 ** DEPTH
            contribution = np.take(self._value[start:start + chunk], leaf)
            raw += contribution.reshape(-1, self._num_trees, n).sum(axis=0).T
        return raw

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self._reference is not None:
            return self._reference.predict(x)
        raw = self.decision_function(x)
        encoded = (raw[:, 0] >= 0).astype(int) if self._binary else np.argmax(raw, axis=1)
        return self.classes_[encoded]
