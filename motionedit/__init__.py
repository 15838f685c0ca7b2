"""MotionEdit: motion-centric image editing data, training and evaluation."""

__version__ = "0.1.0"

#: The six motion categories of MotionEdit, in the paper's order.
CATEGORIES: tuple[str, ...] = (
    "pose",
    "locomotion",
    "deformation",
    "orientation",
    "subject_object",
    "subject_subject",
)
