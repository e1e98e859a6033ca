"""Croissant metadata (MLCommons, JSON-LD, conformsTo 1.0) for a published zoo: ``croissant.json``, uploaded by
``builder.push`` next to the index and the weights parquet, so dataset search engines and Croissant loaders
(``mlcroissant``) find the record sets without this package.

Two record sets: ``networks`` (the index, one record per network: every column of ``index.parquet``, lists as
repeated fields) and ``weights`` (the parquet of :mod:`builder.hub_parquet`, one record per network and snapshot).
Written as a plain dictionary (no dependency); ``tests/test_push.py`` validates it with ``mlcroissant`` and reads
records through it.

Example:
    >>> doc = croissant_metadata(open_zoo(zoo_path), ["weights/train-00000-of-00001.parquet"])  # doctest: +SKIP
    >>> [r["@id"] for r in doc["recordSet"]]  # doctest: +SKIP
    ['networks', 'weights']
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from builder.card import HOMEPAGE
from builder.hub_parquet import WEIGHTS_DIR, weights_schema
from weightzoo.about import BIBTEX
from weightzoo.format.layout import INDEX_NAME
from weightzoo.zoo import Zoo

__all__ = ["CROISSANT_NAME", "croissant_metadata"]

CROISSANT_NAME = "croissant.json"
#: The Croissant 1.0 JSON-LD context (as mlcroissant writes it).
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}


def _data_type(t: pa.DataType) -> tuple[str, bool]:
    """(Croissant data type, repeated) of an Arrow column type."""
    repeated = pa.types.is_list(t) or pa.types.is_fixed_size_list(t)
    base = t.value_type if repeated else t
    if pa.types.is_boolean(base):
        return "sc:Boolean", repeated
    if pa.types.is_integer(base):
        return "sc:Integer", repeated
    if pa.types.is_float32(base):
        return "cr:Float32", repeated
    if pa.types.is_float64(base):
        return "sc:Float", repeated
    return "sc:Text", repeated


def _fields(record_set: str, schema: pa.Schema, source: dict[str, Any]) -> list[dict[str, Any]]:
    fields = []
    for f in schema:
        dtype, repeated = _data_type(f.type)
        field = {"@type": "cr:Field", "@id": f"{record_set}/{f.name}", "name": f.name, "dataType": dtype}
        if repeated:
            field["repeated"] = True
        field["source"] = {**source, "extract": {"column": f.name}}
        fields.append(field)
    return fields


def croissant_metadata(zoo: Zoo, weights_files: list[str], url: str | None = None) -> dict[str, Any]:
    """The Croissant document of a zoo whose weights parquet files are ``weights_files`` (paths in the repository);
    ``url``: where the dataset lives (its Hub page)."""
    manifest = zoo.manifest
    index_entry = next(f for f in manifest.files if f.path == INDEX_NAME)
    dtype = pa.from_numpy_dtype(manifest.dtype)
    distribution: list[dict[str, Any]] = [
        {
            "@type": "cr:FileObject",
            "@id": INDEX_NAME,
            "name": INDEX_NAME,
            "contentUrl": INDEX_NAME,
            "encodingFormat": "application/x-parquet",
            "sha256": index_entry.sha256,
        }
    ]
    record_sets = [
        {
            "@type": "cr:RecordSet",
            "@id": "networks",
            "name": "networks",
            "description": "One record per network: hyper-parameters, status, metrics per snapshot and epoch.",
            "field": _fields("networks", manifest.index_schema, {"fileObject": {"@id": INDEX_NAME}}),
        }
    ]
    if weights_files:
        distribution.append(
            {
                "@type": "cr:FileSet",
                "@id": "weights-parquet",
                "name": "weights-parquet",
                "encodingFormat": "application/x-parquet",
                "includes": f"{WEIGHTS_DIR}/*.parquet",
            }
        )
        record_sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": "weights",
                "name": "weights",
                "description": "One record per network and snapshot: the flat reference-order weight vector.",
                "field": _fields("weights", weights_schema(dtype, manifest), {"fileSet": {"@id": "weights-parquet"}}),
            }
        )
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": manifest.name,
        "description": (
            f"A population of {manifest.num_networks} trained CNNs, each saved at {manifest.num_snapshots} points "
            + (
                "of its training, regenerated with weightzoo after the NWS zoo of Eilertsen et al. (ECAI 2020)."
                if not manifest.declared
                else f"of its training: {manifest.generation['source'].get('title', 'a released zoo')}, converted "
                "to the weightzoo format."
            )
        ),
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "citeAs": manifest.generation["source"]["citation"] if manifest.declared else BIBTEX,
        "license": manifest.record.license_stated,
        "url": url or HOMEPAGE,
        "version": f"{manifest.format_version}.0.0",
        "distribution": distribution,
        "recordSet": record_sets,
    }
