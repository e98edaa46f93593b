"""Chapter 6's Table 5 and Fig. 4 at CPU scale: how well the features of trained classifiers cluster.

    python -m nodelib.experiments run mnist5k-ace-features   # after mnist5k-ace-compare, in the same --out

Jhin et al. (2021, Sec. 4.1) run K-means on the hidden representations of their CIFAR-10 classifiers and report
the silhouette score of the clusters (Table 5), and map the features to the plane with t-SNE (Fig. 4). This
experiment does the same for the models that a finished classifier comparison selected (each run's ``best.pt``):
the features are the body's output ``h(1)`` (the feature maps, flattened) on the first ``points`` test images;
K-means with ``clusters`` clusters (10 restarts, seeded by the run's seed) and scikit-learn's silhouette score
(Euclidean) on them; the silhouette of the true classes as a second view; and a t-SNE map of one seed's features
per variant, recorded for the chapter's figure. No training happens here; a run inherits the ``still_improving``
flag of the run it reads, so a verdict on an unfinished model is capped as the comparison's is.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..claims import Claim
from ..errors import RunError
from .base import Context, config_to_dict


@dataclass(frozen=True)
class FeatureClustering:
    """Which selected models to read and how to cluster their features."""

    source: str = field(default="mnist5k-ace-compare", metadata={
        "help": "the finished classifier comparison (a folder beside this run's) whose selected models are read"})
    variants: tuple[str, ...] = field(default=("mnist5k-odenet", "mnist5k-ace", "mnist5k-ace-joint"), metadata={
        "help": "the comparison's variants to analyse"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "the comparison's seeds"})
    points: int = field(default=1000, metadata={"help": "test images whose features are clustered"})
    clusters: int = field(default=10, metadata={"help": "K-means clusters (the classes: 10)"})
    tsne_seed: int = field(default=0, metadata={"help": "the seed whose features t-SNE maps (one map per variant)"})
    perplexity: float = field(default=30.0, metadata={"help": "t-SNE's perplexity"})
    claims: tuple[Claim, ...] = field(default=(), metadata={"cli": False})

    def __post_init__(self) -> None:
        if not self.variants or not self.seeds:
            raise RunError("name at least one variant and one seed")
        if self.points < 2 * self.clusters or self.clusters < 2:
            raise RunError(f"need clusters >= 2 and points >= 2 * clusters, got {self.clusters} and {self.points}")
        if not 1 < self.perplexity < self.points:
            raise RunError(f"perplexity must lie between 1 and points ({self.points}), got {self.perplexity}")


def features_of(model: torch.nn.Module, x: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """The body's output for ``x``, flattened to one row per image (``model`` needs ``features``, as
    :class:`nodelib.classification.Classifier` has)."""
    extract = getattr(model, "features", None)
    if extract is None:
        raise RunError(f"{type(model).__name__} has no features(x) method")
    model.eval()
    with torch.no_grad():
        return torch.cat([extract(x[i:i + batch]).flatten(1) for i in range(0, len(x), batch)])


def cluster_scores(features: torch.Tensor, labels: torch.Tensor, clusters: int, seed: int) -> dict[str, float]:
    """``silhouette``: the silhouette score of K-means' clusters (Table 5's measure); ``silhouette_classes``: that
    of the true classes; ``kmeans_purity``: the share of points whose cluster's majority class is theirs."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    z = features.double().numpy()
    assigned = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(z)
    y = labels.numpy()
    purity = sum(int(np.bincount(y[assigned == c]).max()) for c in np.unique(assigned))
    return {"silhouette": float(silhouette_score(z, assigned)), "silhouette_classes": float(silhouette_score(z, y)),
            "kmeans_purity": purity / len(y)}


def tsne_map(features: torch.Tensor, seed: int, perplexity: float) -> list[list[float]]:
    """Two t-SNE coordinates per row of ``features`` (PCA initialisation, seeded), rounded for the result file."""
    from sklearn.manifold import TSNE

    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        features.double().numpy())
    return [[round(float(a), 2), round(float(b), 2)] for a, b in xy]


def run(config: FeatureClustering, ctx: Context, name: str = "mnist5k-ace-features") -> dict[str, Any]:
    """Cluster the features of every ``(variant, seed)`` model of ``config.source``."""
    from ..sweep import sweep
    from . import registry
    from ._common import describe_machine, finished_comparison
    from .classifier import build_model, classifier_data

    source, compared = finished_comparison(config.source, ctx)
    records = {(r["variant"], r["seed"]): r for r in compared.get("runs", [])}
    sources = {v: registry.get(v).configuration(ctx.smoke) for v in config.variants}
    first = next(iter(sources.values()))
    parts, described = classifier_data(first, ctx)
    x, y = parts["test"]
    x, y = x[:config.points], y[:config.points]

    def run_one(variant: str, seed: int, checkpoint: Path, resume: bool) -> dict[str, Any]:
        weights = source / f"{variant}-seed{seed}" / "best.pt"
        if not weights.is_file() or (variant, seed) not in records:
            raise RunError(f"{config.source} has no finished run {variant} seed {seed} ({weights})")
        model = build_model(dataclasses.replace(sources[variant], seed=seed))
        saved = torch.load(weights, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        z = features_of(model, x)
        record: dict[str, Any] = {"epoch": saved["epoch"], "dimensions": z.shape[1],
                                  "still_improving": bool(records[(variant, seed)].get("still_improving", False)),
                                  "test_accuracy_at_best": records[(variant, seed)].get("test_accuracy_at_best"),
                                  **cluster_scores(z, y, config.clusters, seed)}
        if seed == config.tsne_seed:
            record["tsne"] = tsne_map(z, seed, min(config.perplexity, (len(z) - 1) / 3))
            record["labels"] = [int(v) for v in y]
        return record

    settings = config_to_dict(config)
    claims = settings.pop("claims", [])
    header = {"experiment": name, "command": ctx.command, "config": settings, "claims": claims,
              "source": {"experiment": config.source, "command": compared.get("command"),
                         "revision": compared.get("machine", {}).get("revision")},
              "data": {**described, "clustered": len(y)}, "machine": describe_machine(torch.device("cpu"))}
    return sweep(config.variants, config.seeds, run_one, out=ctx.result_path, header=header,
                 metrics=("silhouette", "silhouette_classes", "kmeans_purity"), resume=ctx.resume,
                 on_run=lambda r: print(f"{r['variant']} seed {r['seed']}: silhouette {r['silhouette']:.4f} "
                                        f"(classes {r['silhouette_classes']:.4f})", flush=True))
