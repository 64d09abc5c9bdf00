"""Labelling effort on full LFW's people with many photos: answers a truthful user needs to reach
BCubed F 0.95 / 0.99 by the group queue, the pair queue and naming every cluster, from faceatlas'
clusterer (at FAR 1e-3 and at 1e-6, where people are split into many clusters) and from an
Immich-style DBSCAN.

    python benchmarks/labelling_effort.py [MIN_PHOTOS]     # default 20; needs /tmp/lfw_default.npz

``/tmp/lfw_default.npz``: a copy of ``lfw_default_embeddings.py``'s cache (emb, quality, paths).
"""

import numpy as np, time, sys
from pathlib import Path
from faceatlas.eval.labelling import group_review_run, name_every_cluster, review_queue_run, dbscan_start, bcubed_f
from faceatlas.clustering import FaceClusterer
from faceatlas.models.cards import get_card
from faceatlas.clustering.questions import card_scale

d = np.load("/tmp/lfw_default.npz")
names = np.array([Path(p).parent.name for p in d["paths"]])
u, inv, cnt = np.unique(names, return_inverse=True, return_counts=True)
minn = int(sys.argv[1]) if len(sys.argv) > 1 else 20
keep = cnt[inv] >= minn
x = d["emb"][keep]
t = inv[keep]
q = d["quality"][keep]
card = get_card("dlib_resnet")
scale = card_scale(card)
print(len(x), "faces", len(np.unique(t)), "people", "scale", scale)
for far in (1e-3, 1e-6):
    thr = card.threshold_for(far)
    starts = {"faceatlas": FaceClusterer(thr).fit(x, qualities=q).labels_}
    if far == 1e-3:
        starts["dbscan"] = dbscan_start(x)
    for name, st in starts.items():
        print(
            f"start {name} far {far}: F {bcubed_f(t, st):.3f}, clusters {len(np.unique(st[st >= 0]))}, loose {(st < 0).sum()}"
        )
        for fn in (group_review_run, review_queue_run, name_every_cluster):
            b = time.perf_counter()
            kw = dict(threshold=thr, scale=scale) if fn is not name_every_cluster else {}
            r = fn(x, t, st, qualities=q, budget=1500, **kw) if kw else fn(t, st, qualities=q, budget=1500)
            print(
                f"   {r.strategy:20s} F0.95 {r.reached[0.95]}  F0.99 {r.reached[0.99]}  final {r.curve[-1]:.3f} after {len(r.curve) - 1}  {time.perf_counter() - b:.0f}s"
            )
