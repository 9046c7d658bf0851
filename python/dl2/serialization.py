"""Saving and loading models and training checkpoints as single ``.npz`` files, atomically.

* :func:`save` / :func:`load` -- a model: its JSON config (architecture, input shape, dtype) and every
  ``state_dict`` array.
* :func:`save_checkpoint` / :func:`load_checkpoint` -- a model plus optimizer state, epoch, history, random
  generator states and any extra state, for :class:`dl2.Trainer` (``fit(checkpoint=..., resume=...)``).

Files are written to a temporary file in the target's directory, flushed and fsync'ed, then moved over the
target with ``os.replace``: a crash leaves either the old file or the new one, never a torn file.
Files are plain (uncompressed) npz archives with no pickled objects; the path is used as given
(no ``.npz`` is appended).

Layout: ``__dl2__`` holds a JSON string ``{"format": "dl2-model" | "dl2-checkpoint", "version": 1, ...}``;
model arrays are ``model/<state_dict key>``; checkpoint extras are ``optimizer/<key>`` and ``extra/<key>``.
"""
import inspect
import json
import os
import tempfile
import zipfile

import numpy as np

from .module import Module, module_from_config

__all__ = ["to_config", "from_config", "save", "load", "save_checkpoint", "load_checkpoint", "atomic_write",
           "atomic_replace", "check_writable", "generator_states", "set_generator_states"]

FORMAT_VERSION = 1
_META = "__dl2__"


# --------------------------------------------------------------------- configs
def to_config(model):
    """JSON-able ``{"module": model.get_config(), "input_shape": [...], "dtype": "float32"}``.

    A top-level :class:`dl2.Sequential`'s own ``input_shape``/``dtype`` arguments are set to the built ones,
    so ``from_config`` rebuilds it at once.
    """
    if not isinstance(model, Module):
        raise TypeError(f"to_config: expected a dl2 Module, got {type(model).__name__}")
    module_cfg = model.get_config()
    input_shape = list(model.input_shape) if model.built else None
    dtype = np.dtype(model.dtype).name if model.built else None
    if model.built and "input_shape" in _init_params(type(model)):
        module_cfg = {"class": module_cfg["class"], "args": dict(module_cfg["args"])}
        module_cfg["args"]["input_shape"] = input_shape
        if "dtype" in _init_params(type(model)):
            module_cfg["args"]["dtype"] = dtype
    config = {"module": module_cfg, "input_shape": input_shape, "dtype": dtype}
    json.dumps(config)  # fail here, clearly, if something is not JSON-able
    return config


def _init_params(cls):
    return inspect.signature(cls.__init__).parameters


def from_config(config):
    """Rebuild a model from :func:`to_config` output (built when the config has an input shape).

    A bare module config (``{"class": ..., "args": ...}``) is accepted too.
    """
    if not isinstance(config, dict):
        raise TypeError(f"from_config: expected a dict, got {type(config).__name__}")
    if set(config) == {"class", "args"}:
        config = {"module": config, "input_shape": None, "dtype": None}
    if "module" not in config:
        raise ValueError("from_config: not a dl2 model config (no 'module' entry)")
    model = module_from_config(config["module"])
    shape, dtype = config.get("input_shape"), config.get("dtype")
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype or "float32")
        if not (model.built and model.input_shape == shape and model.dtype == dtype):
            model.build(shape, dtype, np.random.default_rng(0))
    return model


# --------------------------------------------------------------------- atomic npz writing
def _write_member(zf, name, array):
    """Write one array as ``<name>.npy`` into the open zip file."""
    with zf.open(name + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode(path):
    """The existing file's permission bits, else ``0o666`` minus the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def check_writable(path, who):
    """Raise ``FileNotFoundError`` (naming ``who``) unless the directory a file ``path`` goes into exists."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{who} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{who} {path}: is a directory, expected a file name")
    return directory


def atomic_replace(path, write):
    """Create or replace the file at ``path`` with what ``write(f)`` writes to a binary file object: a temporary
    file in the same directory, flushed and fsync'ed, then ``os.replace``.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    directory = check_writable(path, "cannot save to")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, _file_mode(path))   # mkstemp makes 0600 files; keep the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def atomic_write(path, arrays):
    """Write ``arrays`` (name -> array) as an npz at ``path`` atomically (see :func:`atomic_replace`)."""
    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in arrays.items():
                _write_member(zf, name, array)

    atomic_replace(path, write)


def _read_npz(path, expected_format):
    """``(meta dict, {name: array})`` from a dl2 npz; ValueError for anything that is not one."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        npz = np.load(path, allow_pickle=False)
        if not hasattr(npz, "files"):
            raise ValueError("a single .npy array, not an npz archive")
        with npz:
            arrays = {name: npz[name] for name in npz.files}  # reads (and CRC-checks) everything now
    except ValueError as e:
        raise ValueError(f"{path}: not a readable dl2 file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as e:
        raise ValueError(f"{path}: corrupt or truncated file, or not an npz archive ({type(e).__name__}: {e})") \
            from None
    except Exception as e:  # zlib.error and other low-level decoding failures
        raise ValueError(f"{path}: corrupt or truncated file ({type(e).__name__}: {e})") from None
    if _META not in arrays:
        raise ValueError(f"{path}: an npz archive but not a dl2 file (no {_META!r} entry)")
    try:
        meta = json.loads(str(arrays.pop(_META)))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: corrupt dl2 header ({e})") from None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt not in ("dl2-model", "dl2-checkpoint"):
        raise ValueError(f"{path}: not a dl2 file (format {fmt!r})")
    if expected_format is not None and fmt != expected_format:
        raise ValueError(f"{path}: is a {fmt} file, expected a {expected_format} file")
    if int(meta.get("version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: written by a newer dl2 (format version {meta['version']} > {FORMAT_VERSION})")
    return meta, arrays


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a dl2 file header")


def _header(meta):
    return np.array(json.dumps(meta, default=_json_default))


def _prefixed(arrays, prefix):
    n = len(prefix) + 1
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


# --------------------------------------------------------------------- state checking
def _load_state(model, state, path):
    """``model.load_state_dict(state)`` with one clear error listing every mismatch."""
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        problems.append(f"missing arrays {missing}")
    if unexpected:
        problems.append(f"unexpected arrays {unexpected}")
    for key, target in own.items():
        if key in state:
            value = state[key]
            if value.shape != target.shape:
                problems.append(f"{key}: file has shape {value.shape}, model expects {target.shape}")
            elif value.dtype != target.dtype:
                problems.append(f"{key}: file has dtype {value.dtype}, model expects {target.dtype}")
    if problems:
        raise ValueError(f"{path}: saved state does not match the model: " + "; ".join(problems))
    model.load_state_dict(state)


def _model_arrays(model):
    if not model.built:
        raise ValueError("cannot save an unbuilt model: build it (or pass input_shape=) first")
    return {f"model/{k}": v for k, v in model.state_dict().items()}


# --------------------------------------------------------------------- models
def save(model, path):
    """Write ``model`` (config + parameters + buffers) to one npz file at ``path``, atomically."""
    meta = {"format": "dl2-model", "version": FORMAT_VERSION, "config": to_config(model)}
    arrays = {_META: _header(meta)}
    arrays.update(_model_arrays(model))
    atomic_write(path, arrays)


def load(path, model=None):
    """Rebuild the model saved at ``path`` and load its arrays; returns the model.

    With ``model`` (a built module), load the arrays into it instead; shapes and dtypes must match.
    Raises ValueError for corrupt, truncated or non-dl2 files and for mismatched arrays.
    """
    meta, arrays = _read_npz(path, None)
    state = _prefixed(arrays, "model")
    if model is None:
        model = _model_from_meta(meta, path)
    _load_state(model, state, path)
    return model


def _model_from_meta(meta, path):
    try:
        return from_config(meta["config"])
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: cannot rebuild the model from its config ({e})") from None


# --------------------------------------------------------------------- random generators
def generator_states(model):
    """``{"<module path>.<attr>": state}`` of every ``np.random.Generator`` held by a module (e.g. Dropout)."""
    out = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                out[f"{name}.{attr}" if name else attr] = value.bit_generator.state
    return out


def set_generator_states(model, states):
    """Restore :func:`generator_states` output into the matching generators of ``model``."""
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            key = f"{name}.{attr}" if name else attr
            if isinstance(value, np.random.Generator) and key in states:
                value.bit_generator.state = states[key]


# --------------------------------------------------------------------- checkpoints
def _split_state(state, prefix):
    """Arrays of a state dict go to npz entries ``prefix/<key>``; scalars and strings to JSON."""
    arrays, scalars = {}, {}
    for key, value in state.items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[f"{prefix}/{key}"] = value
        else:
            value = value.item() if isinstance(value, (np.generic, np.ndarray)) else value
            scalars[key] = value
    return arrays, scalars


def save_checkpoint(path, model, optimizer=None, epoch=0, history=None, rng_states=None, extra=None):
    """Atomically write a training checkpoint.

    ``optimizer`` (its ``state_dict()``), ``epoch`` (epochs completed), ``history`` (JSON-able dict),
    ``rng_states`` (``{name: bit_generator.state}``; the model's own generators are added) and ``extra``
    (``{name: state dict}``, e.g. schedules and callbacks: arrays stored as arrays, the rest as JSON).
    """
    arrays = _model_arrays(model)
    meta = {
        "format": "dl2-checkpoint", "version": FORMAT_VERSION, "config": to_config(model),
        "epoch": int(epoch), "history": history or {},
        "rng_states": dict(rng_states or {}), "model_rng_states": generator_states(model),
        "optimizer": None, "extra": {},
    }
    if optimizer is not None:
        opt_arrays, opt_scalars = _split_state(optimizer.state_dict(), "optimizer")
        arrays.update(opt_arrays)
        meta["optimizer"] = opt_scalars
    for name, state in (extra or {}).items():
        ex_arrays, ex_scalars = _split_state(state, f"extra/{name}")
        arrays.update(ex_arrays)
        meta["extra"][name] = ex_scalars
    arrays[_META] = _header(meta)
    atomic_write(path, arrays)


def load_checkpoint(path, model=None, optimizer=None):
    """Read a checkpoint; load it into ``model`` (rebuilt from the config when None) and ``optimizer``.

    Returns a dict: ``model``, ``epoch``, ``history``, ``rng_states``, ``extra`` (``{name: state dict}``,
    arrays included). The model's own generators (e.g. Dropout) are restored too.
    """
    meta, arrays = _read_npz(path, "dl2-checkpoint")
    if model is None:
        model = _model_from_meta(meta, path)
    _load_state(model, _prefixed(arrays, "model"), path)
    set_generator_states(model, meta.get("model_rng_states", {}))
    if optimizer is not None:
        if meta.get("optimizer") is None:
            raise ValueError(f"{path}: the checkpoint holds no optimizer state")
        state = dict(meta["optimizer"])
        state.update(_prefixed(arrays, "optimizer"))
        try:
            optimizer.load_state_dict(state)
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path}: optimizer state does not match: {e}") from None
    extra = {}
    for name, scalars in meta.get("extra", {}).items():
        state = dict(scalars)
        state.update(_prefixed(arrays, f"extra/{name}"))
        extra[name] = state
    return {"model": model, "epoch": int(meta.get("epoch", 0)), "history": meta.get("history", {}),
            "rng_states": meta.get("rng_states", {}), "extra": extra}
