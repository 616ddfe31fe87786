"""Neutral modules: build a network once, run it on any backend."""

from .. import ops as functional
from .containers import ModuleDict, ParameterDict, ParameterList
from .conv import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, LazyConv2d, MaxPool2d
from .layers import (
    BatchNorm1d,
    Dropout,
    Flatten,
    Identity,
    LazyLinear,
    Linear,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    mlp,
)
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .parameter import Parameter

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "LazyConv2d", "MaxPool2d",
    "BatchNorm1d", "Dropout", "ModuleDict", "ParameterDict", "ParameterList",
    "Flatten", "Identity", "LazyLinear", "Linear", "Module", "ModuleList", "Parameter",
    "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh", "functional", "mlp",
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss",
]
