"""The subject: what the user says it is (:mod:`.hints`: a box, points, a rough mask; :mod:`.keyframe_hints`: boxes
and points on a shot's keyframes, each of an object), a segmentation network's mask of it matted at its edge
(:mod:`.masks`), a promptable model's answer to the hint (:mod:`.prompting`), and which of them answers a hint and
how their answer becomes the subject's alpha (:mod:`.answer`)."""
