"""Reference networks: binary CNN and binary Wide ResNet (LaNMax), float CNN (SAM, noise)."""

from tf_lanmax.models.binary_cnn import binary_cnn
from tf_lanmax.models.float_cnn import float_cnn
from tf_lanmax.models.wide_resnet import binary_wide_resnet

__all__ = ["binary_cnn", "binary_wide_resnet", "float_cnn"]
