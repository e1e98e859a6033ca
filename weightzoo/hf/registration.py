"""Registration of the ``weightzoo`` builder with ``datasets``: ``load_dataset("weightzoo", ...)``.

Dataset scripts are gone from ``datasets``, so registration adds the builder (:mod:`weightzoo.hf.builder`) to
``datasets``' table of packaged builders and teaches its packaged-module factory to pass ``data_dir`` (the zoo
root: a path, an fsspec URL or ``hf://datasets/...``) through untouched instead of globbing it for data files.
Both are private ``datasets`` internals: the supported range is pinned in ``pyproject.toml`` and
``tests/test_hf.py`` fails if a release breaks them.

``import weightzoo`` registers lazily (an import hook that runs when ``datasets.load`` is imported), so importing
weightzoo never imports ``datasets``.

Example:
    >>> from weightzoo.hf.registration import BUILDER_MODULE, module_hash
    >>> BUILDER_MODULE, len(module_hash())
    ('weightzoo.hf.builder', 64)
"""

from __future__ import annotations

import importlib
import sys
import warnings

from weightzoo.errors import ConfigError, WeightZooError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing

if TYPE_CHECKING:  # this module runs at interpreter start-up (weightzoo-autoregister.pth): stdlib-light imports only
    from typing import Any

#: The name to pass to ``datasets.load_dataset``.
BUILDER_NAME = "weightzoo"
#: The module holding the ``datasets`` builder class.
BUILDER_MODULE = "weightzoo.hf.builder"
#: ``datasets`` versions the registration is tested with (keep in step with ``pyproject.toml``). CI installs the
#: newest release in the range; today that is 5.2.0, also the lowest (5.0 and 5.1 need httpx and lack nothing we
#: use; 4.x lacks ``datasets.builder.Key``).
SUPPORTED_DATASETS = ">=5.2,<6"
#: Every ``datasets`` internal weightzoo touches, where, and the release it was checked against. The public path,
#: :func:`weightzoo.load_dataset`, needs only the two entries marked public.
TOUCH_POINTS: tuple[tuple[str, str, str], ...] = (
    ("datasets.packaged_modules._PACKAGED_DATASETS_MODULES", "registration: the builder's entry", "5.2.0"),
    ("datasets.load._PACKAGED_DATASETS_MODULES", "registration: the same table, as load sees it", "5.2.0"),
    ("datasets.load.PackagedDatasetModuleFactory.get_module", "registration: data_dir passed untouched", "5.2.0"),
    ("datasets.load.DatasetModule", "registration: the module get_module returns", "5.2.0"),
    ("datasets.DatasetBuilder._create_builder_config", "builder: options, manifest-keyed cache (overridden)", "5.2.0"),
    ("datasets.builder.Key", "builder: example keys (public name, internal module)", "5.2.0"),
    ("datasets.fingerprint.Hasher", "builder: the cache key of custom features (public)", "5.2.0"),
    ("datasets.table.table_cast", "builder: casting a batch to the declared features (public)", "5.2.0"),
)
_HOOKED_MODULE = "datasets.load"


# ------------------------------------------------------------------------------------------------ registration


def module_hash() -> str:
    """Hash of the builder's code and the format version; part of the ``datasets`` cache path, so a new release
    of the builder never reads a cache prepared by an older one."""
    import hashlib
    from pathlib import Path

    from weightzoo.format.layout import FORMAT_VERSION

    digest = hashlib.sha256(f"format {FORMAT_VERSION}\n".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):  # the builder, the row helpers, this module
        digest.update(path.name.encode() + b"\n" + path.read_bytes())
    return digest.hexdigest()


def register() -> None:
    """Register the ``weightzoo`` builder with ``datasets`` now (idempotent); imports ``datasets``.

    Raises :class:`WeightZooError` naming the missing piece when the installed ``datasets`` release changed the
    internals the registration relies on.
    """
    _register(importlib.import_module(_HOOKED_MODULE))


def register_lazily() -> None:
    """Register now if ``datasets`` is already imported, otherwise as soon as it is (keeps ``import weightzoo``
    free of the cost of importing ``datasets``). Failures are reported as warnings, never as import errors."""
    if _HOOKED_MODULE in sys.modules:
        _register_quietly(sys.modules[_HOOKED_MODULE])
    elif not any(isinstance(f, _RegisterOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())


def autoregister() -> None:
    """What ``weightzoo-autoregister.pth`` runs at interpreter start-up (turned off by ``WEIGHTZOO_AUTOREGISTER=0``):
    :func:`register_lazily`, so that ``load_dataset("weightzoo")`` works without ``import weightzoo``. Imports no
    heavy module, and never raises: a failure here must not break someone's Python."""
    try:
        register_lazily()
    except Exception as e:  # pragma: no cover - defensive: start-up must go on
        warnings.warn(f"weightzoo: automatic registration failed ({e}); use `import weightzoo`", stacklevel=2)


def is_registered() -> bool:
    """Whether ``datasets`` (if imported) knows the ``weightzoo`` builder."""
    load = sys.modules.get(_HOOKED_MODULE)
    table = getattr(load, "_PACKAGED_DATASETS_MODULES", {}) if load else {}
    factory = getattr(load, "PackagedDatasetModuleFactory", None)
    return BUILDER_NAME in table and bool(getattr(getattr(factory, "get_module", None), "_weightzoo", False))


def _register(load: Any) -> None:
    version = getattr(sys.modules.get("datasets"), "__version__", "?")
    packaged = importlib.import_module("datasets.packaged_modules")
    table = getattr(packaged, "_PACKAGED_DATASETS_MODULES", None)
    factory = getattr(load, "PackagedDatasetModuleFactory", None)
    missing = [
        what
        for what, ok in (
            ("datasets.packaged_modules._PACKAGED_DATASETS_MODULES (a dict)", isinstance(table, dict)),
            ("datasets.load._PACKAGED_DATASETS_MODULES", getattr(load, "_PACKAGED_DATASETS_MODULES", None) is table),
            ("datasets.load.PackagedDatasetModuleFactory.get_module", callable(getattr(factory, "get_module", None))),
            ("datasets.load.DatasetModule", hasattr(load, "DatasetModule")),
        )
        if not ok
    ]
    if missing:
        raise WeightZooError(
            f"cannot register the 'weightzoo' builder with datasets {version}: it lacks {', '.join(missing)}; "
            f"weightzoo supports datasets{SUPPORTED_DATASETS} (pip install 'datasets{SUPPORTED_DATASETS}'), and "
            "weightzoo.open_zoo(...) reads zoos without datasets"
        )
    assert isinstance(table, dict) and factory is not None
    table[BUILDER_NAME] = (BUILDER_MODULE, module_hash())
    if not getattr(factory.get_module, "_weightzoo", False):
        factory.get_module = _wrap_get_module(factory.get_module)


def _wrap_get_module(original: Any) -> Any:
    def get_module(self: Any) -> Any:
        if getattr(self, "name", None) != BUILDER_NAME:
            return original(self)
        from datasets.data_files import DataFilesDict
        from datasets.load import DatasetModule

        if self.data_files is not None:
            raise ConfigError(
                "load_dataset('weightzoo') reads a whole zoo: pass data_dir=<zoo folder, fsspec URL or "
                f"hf://datasets/<org>/<name>> instead of data_files={self.data_files!r}"
            )
        # data_dir (the zoo root, possibly a URL) reaches the builder untouched; an empty (not None) data_files
        # tells load_dataset_builder that the packaged builder has its input.
        return DatasetModule(
            BUILDER_MODULE, module_hash(), {"dataset_name": BUILDER_NAME, "data_files": DataFilesDict()}
        )

    get_module._weightzoo = True  # type: ignore[attr-defined]
    get_module.__wrapped__ = original  # type: ignore[attr-defined]
    return get_module


def _register_quietly(load: Any) -> None:
    try:
        _register(load)
    except (WeightZooError, AttributeError, ImportError, TypeError) as e:  # never break someone's `import datasets`
        warnings.warn(f"weightzoo: {e}", RuntimeWarning, stacklevel=2)


class _RegisterOnImport:  # an importlib.abc.MetaPathFinder (not subclassed: importlib.abc costs 13 ms at start-up)
    """Runs the registration right after ``datasets.load`` is executed, wherever ``datasets`` is imported from."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _HOOKED_MODULE:
            return None
        spec = None
        for finder in sys.meta_path:  # whichever finder would have found it (site-packages, editable installs)
            find = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RegisteringLoader(spec.loader, self)
        return spec


class _RegisteringLoader:  # an importlib.abc.Loader
    def __init__(self, inner: Any, finder: _RegisterOnImport):
        self._inner, self._finder = inner, finder

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... of the real loader
        return getattr(self._inner, name)

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._inner.exec_module(module)
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        _register_quietly(module)
