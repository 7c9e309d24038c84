"""How often the phrase MRF ties the sample's subject word and place phrase to their regions.

The synthetic sample (uvs.sample) knows each image's scene and which region shows what
(REGION_ROLES), so the alignment can be scored: the share of images whose subject word lands
on the subject's region, and whose place noun lands on the place's region. Chance is one in
len(REGION_ROLES).
"""

from __future__ import annotations

from uvs import sample
from uvs.align.show import align_sentence
from uvs.regions import Regions


def alignment_rates(model: dict, regions: Regions, beta: float = 0.1,
                    limit: int | None = None) -> dict:
    """{'subject', 'place', 'chance', 'images'}: rates over the sample split's photos.

    Each photo's sentence is 'the COLOUR SUBJECT ACTION PLACE .' from its scene name.
    """
    subject_role = sample.REGION_ROLES.index("subject")
    place_role = sample.REGION_ROLES.index("place")
    hits_s = hits_p = n = 0
    for k in range(len(regions) if limit is None else min(limit, len(regions))):
        scene = sample.scene_of(regions.paths[k])
        words = ["the", sample.COLOURS[scene["colour"]], sample.SUBJECTS[scene["subject"]],
                 sample.ACTIONS[scene["action"]][0], *sample.PLACES[scene["place"]][0].split(),
                 "."]
        feats, boxes = regions.of(k)
        a = align_sentence(model, feats, boxes, " ".join(words), beta)["region"]
        hits_s += a[2] == subject_role
        hits_p += a[len(words) - 2] == place_role  # the place's noun, before the full stop
        n += 1
    return {"subject": hits_s / n, "place": hits_p / n,
            "chance": 1 / len(sample.REGION_ROLES), "images": n}
