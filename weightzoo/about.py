"""Facts about a zoo that several outputs state (the dataset card, the ``datasets`` builder's info, the Croissant
metadata), each kept here once: the citation of the paper that introduced the zoo, and a zoo's licence.

Example:
    >>> BIBTEX.splitlines()[0], license_of({"license": "cc0-1.0"})
    ('@inproceedings{EJRUY20,', 'cc0-1.0')
"""

from __future__ import annotations

from typing import Any

__all__ = ["BIBTEX", "license_of"]

#: The paper that introduced the NWS zoo (Eilertsen et al., ECAI 2020), as BibTeX.
BIBTEX = """@inproceedings{EJRUY20,
  author    = "Eilertsen, Gabriel and J\\"onsson, Daniel and Ropinski, Timo and Unger, Jonas and Ynnerman, Anders",
  title     = "Classifying the classifier: dissecting the weight space of neural networks",
  booktitle = "Proceedings of the European Conference on Artificial Intelligence (ECAI 2020)",
  volume    = "325", pages = "1119--1126", year = "2020"
}"""


def license_of(generation: dict[str, Any] | Any) -> str:
    """The licence a zoo's generation record states: ``generate --license``; zoos made before the option had
    ``mit`` written into their card, and keep it; a converted release (the authors state none): ``other``.

    Example:
        >>> license_of({"license": "cc0-1.0"}), license_of({}), license_of({"source": {"kind": "nws_release"}})
        ('cc0-1.0', 'mit', 'other')
    """
    if not isinstance(generation, dict):
        return "mit"
    source = generation.get("source")
    if isinstance(source, dict) and source.get("kind"):
        return "other"
    return str(generation.get("license") or "mit")
