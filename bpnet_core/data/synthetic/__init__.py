"""An embedded synthetic COCO-keypoints dataset: articulated people on cluttered backgrounds, in COCO's own layout.

:func:`generate_synthetic_coco` writes::

    DIR/train2017/000000000001.jpg ...          JPEG, quality 90
    DIR/val2017/...
    DIR/annotations/person_keypoints_train2017.json
    DIR/annotations/person_keypoints_val2017.json
    DIR/dataset_spec.json                        data_pose_config/synthetic_spec.json, root_directory_path = DIR

so every later step (``dataset_convert``, training, COCO evaluation) runs on it exactly as on COCO 2017, with no
download and no network.

How a figure is made
--------------------
Each person is a small 3-D body: a pelvis, a spine (lean, side bend, twist), a neck and an ellipsoidal head, and
two-segment arms and legs with joint-angle limits. A pose family (standing, walking, running, arms raised,
reaching, sitting, squatting, lying, free) sets the joint angles; a yaw turns the body (facing the camera, turned
away, profiles) and a roll tilts it in the image plane. The body is projected orthographically and drawn part by
part, back to front by depth: tapered limbs, a two-piece torso (shirt over trousers), hands, shoes, a head with
hair, eyes and sometimes a chest print on the front. Clothes get flat, striped, checked, noisy or gradient
textures and the parts are shaded so that overlapping limbs stay distinguishable.

Keypoint semantics are COCO's, exactly: ``left_*`` is the figure's own left (image right for a figure facing the
camera), every body keypoint sits at the centre of the drawn joint, eyes/nose/ears sit on the head.

Labels
------
* ``v = 2`` visible; ``v = 1`` in the image but covered: by a person drawn later (in front), by a foreground
  object, or by one of the figure's own parts in front of it (a hip behind a forearm, the far shoulder in a
  profile); ``v = 0`` outside the image, or a face point on the far side of the head (COCO leaves the eyes and
  nose of a person seen from behind unlabelled). ``v = 0`` comes with ``x = y = 0``.
* ``segmentation`` is the visible silhouette (later figures cut out) as polygons from ``cv2.findContours``;
  ``area`` is that mask's pixel count; ``bbox`` covers the visible silhouette and the labelled keypoints.
* About one person in eight is left unlabelled (``num_keypoints: 0``, all keypoints 0, with a segmentation), and
  some images hold a crowd: a tight group of small figures annotated as one ``iscrowd: 1`` RLE region. Training
  must mask both out, as on COCO.

Determinism: image *i* of a split is drawn from ``SeedSequence([seed, split, i])`` alone, so the output does not
depend on the number of worker processes or their scheduling; image ids are 1..num_train for train2017 and
continue with num_train+1.. for val2017.
"""

from bpnet_core.data.synthetic.scene import DIFFICULTIES
from bpnet_core.data.synthetic.writer import (
    JPEG_QUALITY,
    MARKER,
    MAX_IMAGE_SIZE,
    MAX_PEOPLE,
    MIN_IMAGE_SIZE,
    SPLITS,
    generate_synthetic_coco,
)

__all__ = [
    "DIFFICULTIES",
    "JPEG_QUALITY",
    "MARKER",
    "MAX_IMAGE_SIZE",
    "MAX_PEOPLE",
    "MIN_IMAGE_SIZE",
    "SPLITS",
    "generate_synthetic_coco",
]
