import numpy as np

import d2lparams as d2p
from d2lparams import nn

d2p.seed(0)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
print(net)
for name, p in net.named_parameters():
    print(name, p.shape, "stored as", p.native_shape)
X = d2p.rand(2, 4)
print(type(net.native).__name__, "->", type(net(X)).__name__)
print(np.round(d2p.to_numpy(net(X)), 4))
