"""Facts about a zoo that several outputs state (the dataset card, the ``datasets`` builder's info, the Croissant
metadata), each kept here once: the citation of the paper that introduced the zoo, and the licence a generated
zoo states by default (the licence a given zoo states: :attr:`weightzoo.format.record.GenerationRecord.license_stated`).

Example:
    >>> BIBTEX.splitlines()[0], DEFAULT_LICENSE
    ('@inproceedings{EJRUY20,', 'cc-by-4.0')
"""

from __future__ import annotations

__all__ = ["BIBTEX", "DEFAULT_LICENSE"]

#: The paper that introduced the NWS zoo (Eilertsen et al., ECAI 2020), as BibTeX.
BIBTEX = """@inproceedings{EJRUY20,
  author    = "Eilertsen, Gabriel and J\\"onsson, Daniel and Ropinski, Timo and Unger, Jonas and Ynnerman, Anders",
  title     = "Classifying the classifier: dissecting the weight space of neural networks",
  booktitle = "Proceedings of the European Conference on Artificial Intelligence (ECAI 2020)",
  volume    = "325", pages = "1119--1126", year = "2020"
}"""


#: The licence a generated zoo's card states unless ``generate --license`` says otherwise.
DEFAULT_LICENSE = "cc-by-4.0"
