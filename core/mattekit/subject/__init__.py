"""The subject: what the user says it is (:mod:`.hints`: a box, points, a rough mask), a segmentation network's
mask of it matted at its edge (:mod:`.masks`), and a promptable model's answer to the hint (:mod:`.prompting`)."""
