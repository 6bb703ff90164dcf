"""Lineage of a dataset: what a training or evaluation run records about the data it used.

Pipeline position: ``pipeline.train`` logs ``dataset_info`` as the run's dataset input (MLflow
``log_input``) and writes it into the model bundle; ``pipeline.evaluate`` logs it for the evaluated split. It
reads the dataset's schema attributes only (``data_prep.schema``), so it is instant for datasets of any size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from data_prep import schema


def dataset_info(path: str | Path) -> dict[str, Any]:
    """Lineage of a dataset: path, digest, schema version, families, split sizes, shapes, provenance bits.

    The digest hashes the dataset's identity (its inputs' SHA-256 from the provenance, configuration hash,
    splits and statistics) rather than its bytes, so it is instant for datasets of any size.
    """
    path = Path(path)
    with schema.open_dataset(path) as h5:
        provenance = schema.read_provenance(h5)
        splits = schema.read_splits(h5)
        stats = schema.read_normalization(h5)
        families = sorted(str(family) for family in set(schema.read_sample_families(h5)))
        breakdown = schema.read_family_breakdown(h5)
        digest = hashlib.sha256()
        for item in (
            json.dumps(provenance.get("sources"), sort_keys=True, default=str),
            str(provenance.get("config_hash")),
            json.dumps(stats.to_dict(), sort_keys=True, default=str),
            *(schema.split_digest(splits[name]) for name in sorted(splits)),
            str(h5[schema.SEISMIC].shape),
        ):
            digest.update(item.encode())
        return {
            "path": str(path.resolve()),
            "digest": digest.hexdigest()[:16],
            "schema_version": schema.schema_version(h5),
            "families": families,
            "family_breakdown": breakdown,
            "split_sizes": {name: int(len(indices)) for name, indices in splits.items()},
            "num_samples": int(h5[schema.SEISMIC].shape[0]),
            "seismic_shape": [int(n) for n in h5[schema.SEISMIC].shape[1:]],
            "grid_shape": [int(n) for n in h5[schema.VELOCITY].shape[1:]] if schema.VELOCITY in h5 else [],
            "created_by": str(provenance.get("created_by")),
            "config_hash": str(provenance.get("config_hash")),
        }


__all__ = ["dataset_info"]
