"""Reference networks: a fast binary CNN for 28x28 inputs and the binary Wide ResNet."""

from tf_lanmax.models.binary_cnn import binary_cnn
from tf_lanmax.models.wide_resnet import binary_wide_resnet

__all__ = ["binary_cnn", "binary_wide_resnet"]
