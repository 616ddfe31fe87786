import numpy as np

import d2lparams as d2p
from d2lparams import init, nn

net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def init_normal(m):
    if isinstance(m, nn.Linear):
        init.normal_(m.weight, mean=0, std=0.01)
        init.zeros_(m.bias)


d2p.seed(0)
net.apply(init_normal)
print(np.round(net[0].weight[0], 4), net[0].bias[0])

init.xavier_uniform_(net[0].weight)
init.constant_(net[2].weight, 42)
print(np.round(net[0].weight[0], 4), net[2].weight[:3, 0])


class MyInit(init.Initializer):
    def __call__(self, shape, rng):
        w = rng.uniform(-10, 10, shape)
        return w * (np.abs(w) >= 5)


init.initialize_(net[0].weight, MyInit())
net[0].weight[:] += 1
net[0].weight[0, 0] = 42
print(np.round(net[0].weight[:2], 2))
