"""Ships ``weightzoo-autoregister.pth`` beside the packages, so that ``load_dataset("weightzoo")`` works in a fresh
interpreter without ``import weightzoo`` (everything else is in ``pyproject.toml``).

The ``.pth`` line runs at interpreter start-up, imports two small modules (no torch, numpy, pyarrow or datasets)
and adds an import hook that registers the builder when ``datasets.load`` is imported. ``WEIGHTZOO_AUTOREGISTER=0``
turns it off. Wheels get the file through ``build_py``; editable installs through ``editable_wheel``, whose
unpacked-wheel folder (private setuptools API, guarded: without it only the automatic registration is lost, and
``import weightzoo`` still registers) holds its own ``.pth`` files.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = Path(__file__).resolve().parent / "weightzoo-autoregister.pth"


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(str(PTH), str(Path(self.build_lib) / PTH.name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH.name)]


cmdclass: dict[str, type] = {"build_py": BuildPyWithPth}
try:
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # old setuptools: no PEP 660 editable installs
    pass
else:

    class EditableWheelWithPth(editable_wheel):
        def _install_namespaces(self, installation_dir: str, pth_prefix: str) -> None:
            super()._install_namespaces(installation_dir, pth_prefix)
            self.copy_file(str(PTH), str(Path(installation_dir) / PTH.name))

    cmdclass["editable_wheel"] = EditableWheelWithPth

setup(cmdclass=cmdclass)
