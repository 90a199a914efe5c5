"""Saving and loading a trained model as arrays (.npz) and JSON, never a pickle: loading runs no code, and everything read is checked."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from aggregator.errors import ModelError, ModelFormatError
from aggregator.files import WriteError, atomic_write, folder_lock
from aggregator.learn.classify import FORMAT_VERSION, META_KEYS, Model
from aggregator.learn.features import LEXICON_COLUMNS, MAX_FEATURES, analyze
from aggregator.learn.linear import Linear
from aggregator.learn.priority import Background, Classifier, Learned, Prior, PriorityModel, SiteRates
from aggregator.learn.sections import SectionModel

ARRAYS_FILE = "model.npz"
STATE_FILE = "model.json"
META_FILE = "meta.json"
MAX_FILE_BYTES = 512 * 2**20  # a model file larger than this is refused before it is read
MAX_ARRAY_BYTES = 512 * 2**20  # the arrays' total once decompressed, from their headers, checked before any is read
_FLOAT64 = np.dtype(np.float64)  # as `save` writes them, in this machine's byte order
_RETRAIN = "run `aggregator train` again"


# --- writing -------------------------------------------------------------------------------------


def save(model: Model, directory: Path) -> None:
    """Write model.npz, model.json, then meta.json (with both files' SHA-256) into `directory`.

    Each file is written to a new, unpredictably named file in `directory` and renamed into place
    (`files.atomic_write`), so a planted `model.npz.tmp` link redirects nothing; the writes hold the
    folder's lock, which `load` shares, so a reader never sees half a model, nor two models mixed.
    """
    state, arrays = _to_files(model)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    files = {ARRAYS_FILE: buffer.getvalue(), STATE_FILE: json.dumps(state, ensure_ascii=False).encode("utf-8")}
    model.meta["model_sha256"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    files[META_FILE] = (json.dumps(model.meta, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with folder_lock(directory, exclusive=True):  # a desk's retraining and the daemon's never interleave
            for name, data in files.items():  # meta.json last: it vouches for the others
                atomic_write(directory / name, data)
    except OSError as exc:
        raise ModelError(f"cannot save the model: {directory}: {exc.strerror or exc}") from None
    except WriteError as exc:
        raise ModelError(f"cannot save the model: {exc}") from None


def _to_files(model: Model) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    st = model._state
    features: TfidfVectorizer = st["features"]
    vocabulary = sorted(features.vocabulary_, key=features.vocabulary_.__getitem__)
    arrays: dict[str, np.ndarray] = {"idf": np.asarray(features.idf_, dtype=np.float64)}
    section: SectionModel = st["section"]
    priority: PriorityModel = st["priority"]
    priority_state, priority_clf = _priority_to_files(priority, arrays)
    linear = {"flat": section.flat, "top": section.top, "topic": section.topic, "priority": priority_clf}
    classes = {}
    for name, clf in linear.items():
        if clf is not None:
            arrays[f"{name}_coef"], arrays[f"{name}_intercept"] = clf.coef, clf.intercept
            classes[name] = list(clf.classes)
    state = {
        "vocabulary": vocabulary,
        "classes": classes,
        "sections": [list(s) for s in section.leaves],
        "exclusive": section.exclusive,
        "priority": priority_state,
        "sites": st["sites"],
    }
    return state, arrays


def _priority_to_files(priority: PriorityModel, arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], Linear | None]:
    """The priority model's entry of model.json (adding its arrays to `arrays`) and its classifier, if any.
    Every kind has the same keys, "mode" naming the kind and a key the kind does not use holding a neutral value."""
    state: dict[str, Any] = {"mode": priority.kind, "platt": [1.0, 0.0, 0.0, 0.0], "scale": 1.0, "ref": 0.0,
                             "picked_sites": [], "held_out": {}, "site_rates": {"overall": 0.5, "picks": {}, "posts": {}}}
    if isinstance(priority, Learned):
        rates = priority.rates
        state.update(platt=list(priority.platt), held_out=dict(priority.held_out),
                     site_rates={"overall": rates.overall, "picks": dict(rates.picks), "posts": dict(rates.posts)})
    if isinstance(priority, Background):
        state.update(scale=priority.labelled_share)
    if isinstance(priority, Prior):
        state.update(ref=priority.ref, picked_sites=sorted(priority.picked_sites))
        arrays["centroid"] = np.asarray(priority.centroid, dtype=np.float64)
    return state, priority.clf if isinstance(priority, Learned) else None


# --- reading -------------------------------------------------------------------------------------


def load(directory: Path) -> Model:
    """Read a model written by `save`; ModelError (saying to retrain) if it is missing, damaged, of another
    format, or not what `save` writes. Nothing read is executed: arrays come from .npz with pickles
    refused, the rest from JSON, and every shape and type is checked before use."""
    if not directory.is_dir():
        raise ModelError(f"no model in {directory}: run `aggregator train` first")
    with folder_lock(directory, exclusive=False):  # never between a writer's files
        return _load(directory)


def _load(directory: Path) -> Model:
    for name in (META_FILE, ARRAYS_FILE, STATE_FILE):
        path = directory / name
        if not path.is_file():
            raise ModelError(f"model in {directory} is incomplete ({name} is missing); {_RETRAIN}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ModelError(f"model in {directory} has a {name} over {MAX_FILE_BYTES // 2**20} MiB; {_RETRAIN}")
    meta = _read_meta(directory)
    sums = meta["model_sha256"]
    for name in (ARRAYS_FILE, STATE_FILE):
        if not isinstance(sums, dict) or _sha256(directory / name) != sums.get(name):
            raise ModelError(f"model in {directory} is damaged ({name} does not match {META_FILE}); {_RETRAIN}")
    try:
        state = json.loads((directory / STATE_FILE).read_text("utf-8"))
        arrays = _read_arrays(directory / ARRAYS_FILE, _expected_arrays(state))
        return Model(_from_files(state, arrays), meta)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, zipfile.BadZipFile,
            RecursionError, MemoryError) as exc:
        raise ModelError(f"model in {directory} is not an aggregator model ({_short(exc)}); {_RETRAIN}") from None


def _expected_arrays(state: Any) -> dict[str, tuple[int, ...]]:
    """The arrays model.json calls for (name -> shape, all float64): what `_to_files` writes for that state,
    so that model.npz is read only as far as these, and no further (ValueError when the state does not say)."""
    _need(isinstance(state, dict), "model.json is not an object")
    vocabulary, classes, priority = state.get("vocabulary"), state.get("classes"), state.get("priority")
    _need(isinstance(vocabulary, list) and len(vocabulary) <= MAX_FEATURES, "a vocabulary of distinct terms")
    _need(isinstance(classes, dict), "classes by classifier")
    n_vocabulary = len(vocabulary)
    n_features = n_vocabulary + len(LEXICON_COLUMNS)
    shapes: dict[str, tuple[int, ...]] = {"idf": (n_vocabulary,)}
    for name in ("flat", "top", "topic", "priority"):
        names = classes.get(name)
        if names is not None:
            _need(isinstance(names, list), f"class names of {name}")
            rows = 1 if len(names) == 2 else len(names)
            shapes[f"{name}_coef"], shapes[f"{name}_intercept"] = (rows, n_features), (rows,)
    if isinstance(priority, dict) and priority.get("mode") == Prior.kind:
        shapes["centroid"] = (n_vocabulary,)
    total = sum(int(np.prod(shape, dtype=np.int64)) for shape in shapes.values()) * _FLOAT64.itemsize
    if total > MAX_ARRAY_BYTES:
        raise ValueError(f"arrays of {total // 2**20} MiB, over {MAX_ARRAY_BYTES // 2**20} MiB")
    return shapes


def _read_arrays(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The arrays `shapes` names from the .npz at `path`, each only after its header said it is float64 of
    the expected shape: nothing else in the file is decompressed, and an extra or unknown member is refused
    (ValueError). Never a pickle: the dtype is checked first, and the data is read as raw bytes."""
    with zipfile.ZipFile(path) as npz:
        members = npz.namelist()
        wanted = {f"{name}.npy" for name in shapes}
        extra = sorted(set(members) - wanted)
        if extra:
            raise ValueError(f"{ARRAYS_FILE} holds {extra[0][:60]!r}, which this model has no use for")
        if len(members) != len(set(members)):
            raise ValueError(f"{ARRAYS_FILE} holds a member twice")
        arrays = {}
        for name, shape in shapes.items():
            if f"{name}.npy" not in members:
                raise ValueError(f"expected the array {name}")
            with npz.open(f"{name}.npy") as f:
                arrays[name] = _read_npy(f, name, shape)
    return arrays


def _read_npy(f: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        found, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        found, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"{name} in an .npy format {version} this aggregator does not write")
    if dtype != _FLOAT64 or dtype.hasobject:
        raise ValueError(f"{name} as float64 numbers, not {str(dtype)[:40]}")
    if tuple(found) != shape:
        raise ValueError(f"{name} of shape {shape}, not {str(tuple(found))[:60]}")
    flat = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=_FLOAT64)
    view, done = memoryview(flat).cast("B"), 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            raise ValueError(f"{name} is cut short")
        done += n
    if f.read(1):
        raise ValueError(f"{name} has more data than its header says")
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        meta = json.loads((directory / META_FILE).read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        raise ModelError(f"model in {directory} has a damaged {META_FILE}; {_RETRAIN}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"model in {directory} has a damaged {META_FILE}; {_RETRAIN}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ModelError(f"model in {directory} lacks {', '.join(missing)} in {META_FILE}; {_RETRAIN}")
    if meta["format"] != FORMAT_VERSION:
        raise ModelFormatError(f"model in {directory} has format {meta['format']}, this aggregator reads {FORMAT_VERSION}; "
                         f"{_RETRAIN}")
    return meta


def _from_files(state: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The model's state from what `_to_files` wrote, checked field by field (ValueError when anything is off)."""
    _need(isinstance(state, dict), "model.json is not an object")
    vocabulary = state["vocabulary"]
    _need(isinstance(vocabulary, list) and all(isinstance(t, str) for t in vocabulary), "a vocabulary of strings")
    _need(len(vocabulary) == len(set(vocabulary)) <= MAX_FEATURES, "a vocabulary of distinct terms")
    idf = _floats(arrays, "idf", (len(vocabulary),))
    features = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, max_features=MAX_FEATURES, dtype=np.float64,
                               vocabulary={t: i for i, t in enumerate(vocabulary)})
    features.idf_ = idf
    n_features = len(vocabulary) + len(LEXICON_COLUMNS)
    classes = state["classes"]
    _need(isinstance(classes, dict), "classes by classifier")
    linear: dict[str, Linear | None] = {}
    for name in ("flat", "top", "topic", "priority"):
        names = classes.get(name)
        if names is None:
            linear[name] = None
            continue
        _need(isinstance(names, list) and all(isinstance(c, str) for c in names), f"class names of {name}")
        clf = Linear(tuple(names), _floats(arrays, f"{name}_coef", None), _floats(arrays, f"{name}_intercept", None))
        clf.check(n_features)
        linear[name] = clf
    leaves = state["sections"]
    _need(isinstance(leaves, list) and leaves and all(isinstance(s, list) and s and all(isinstance(h, str) for h in s)
                                                      for s in leaves), "sections as lists of headings")
    exclusive = _str_map(state["exclusive"], "exclusive sections")
    section = SectionModel([tuple(s) for s in leaves], linear["flat"], linear["top"], linear["topic"], exclusive)
    priority = _priority_from_files(state["priority"], linear["priority"], arrays, len(vocabulary))
    sites = state["sites"]
    _need(isinstance(sites, dict) and all(isinstance(k, str) and isinstance(v, dict) and all(
        isinstance(a, str) and isinstance(b, int) and not isinstance(b, bool) for a, b in v.items())
        for k, v in sites.items()), "site histories")
    return {"features": features, "section": section, "priority": priority, "sites": sites}


def _priority_from_files(p: Any, clf: Linear | None, arrays: dict[str, np.ndarray], n_vocabulary: int) -> PriorityModel:
    """The priority model of the kind "mode" names, from the keys that kind uses (ValueError when anything is off)."""
    _need(isinstance(p, dict) and p.get("mode") in (Classifier.kind, Background.kind, Prior.kind), "a priority mode")
    if p["mode"] == Prior.kind:
        _need(clf is None, "no priority classifier for the prior")
        ref, picked = p["ref"], p["picked_sites"]
        _need(_finite(ref), "a finite likeness of the picks")
        _need(isinstance(picked, list) and all(isinstance(x, str) for x in picked), "picked sites as strings")
        return Prior(_floats(arrays, "centroid", (n_vocabulary,)), float(ref), frozenset(picked))
    if clf is None:
        raise ValueError("expected a priority classifier unless the mode is prior")
    platt, held_out = p["platt"], p["held_out"]
    _need(isinstance(platt, list) and len(platt) == 4 and all(_finite(v) for v in platt), "four calibration numbers")
    _need(isinstance(held_out, dict) and all(isinstance(k, str) and _finite(v) for k, v in held_out.items()),
          "held-out scores as numbers")
    a, b, c, d = (float(v) for v in platt)
    calibration, scores, rates = (a, b, c, d), {k: float(v) for k, v in held_out.items()}, _site_rates(p["site_rates"])
    if p["mode"] == Classifier.kind:
        return Classifier(clf, calibration, scores, rates)
    scale = p["scale"]
    _need(_finite(scale) and 0 < scale < 1, "a background scale between 0 and 1")
    return Background(clf, calibration, scores, rates, float(scale))


def _site_rates(r: Any) -> SiteRates:
    """The sites' pick counts, checked: whole numbers, no more picks than posts, an overall rate in (0, 1)."""
    _need(isinstance(r, dict) and _finite(r.get("overall")) and 0 < r["overall"] < 1, "an overall pick rate")
    picks, posts = r.get("picks"), r.get("posts")
    _need(isinstance(picks, dict) and isinstance(posts, dict) and set(picks) == set(posts), "site counts")
    for site, n in posts.items():
        _need(isinstance(site, str) and _count(n) and _count(picks[site]) and picks[site] <= n, "site counts")
    return SiteRates(picks, posts, float(r["overall"]))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"expected {what}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _floats(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...] | None) -> np.ndarray:
    if name not in arrays:
        raise ValueError(f"expected the array {name}")
    array = arrays[name]
    _need(array.dtype == np.float64 and (shape is None or array.shape == shape) and np.isfinite(array).all(),
          f"{name} as finite float64 numbers" + (f" of shape {shape}" if shape else ""))
    return array


def _str_map(value: Any, what: str) -> dict[str, str]:
    _need(isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()), what)
    return dict(value)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
