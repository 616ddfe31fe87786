import numpy as np

import d2lparams as d2p
from d2lparams import nn

d2p.seed(0)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
p = net[2].bias
print(type(p).__name__, p.shape, p.dtype, p.requires_grad)
print(np.round(p.numpy(), 4), p.grad)
print(list(net.state_dict()))
print(dict(d2p.native_names(net)))
print(type(net[2].weight.native).__name__)
