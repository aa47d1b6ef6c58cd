"""Label map -> image generators and their discriminators; importing this package registers them."""

from synthlabel.generators import discriminators, pix2pix, spade  # noqa: F401  (registers the models)
