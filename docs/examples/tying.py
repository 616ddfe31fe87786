import numpy as np

import d2lparams as d2p
from d2lparams import nn, ops

d2p.seed(0)
shared = nn.Linear(8, 8)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(),
                    nn.Linear(8, 1))
print(net[2].weight is net[4].weight, net.num_parameters())
print(d2p.tied_parameters(net))
net[2].weight[0, 0] = 100
print(net[4].weight[0, 0])
d2p.backward(lambda: ops.sum(net(d2p.rand(2, 4))))
print(np.round(net[2].weight.grad[0, :3], 4))
print(d2p.summary(net, (2, 4)))
