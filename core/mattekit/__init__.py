"""mattekit: cut subjects out of images and frame sequences, and make them look better."""
__version__ = "0.1.0"
