import os
import tempfile

import numpy as np

import d2lparams as d2p
from d2lparams import nn

d2p.seed(0)
net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
path = d2p.save(net, os.path.join(tempfile.mkdtemp(), "net.safetensors"))
twin = d2p.load(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)), path)
X = d2p.rand(3, 4)
print(np.allclose(d2p.to_numpy(net.eval()(X)), d2p.to_numpy(twin.eval()(X))))
print([name for name, _ in twin.named_buffers()])
bad = nn.Sequential(nn.Linear(4, 9), nn.BatchNorm1d(9), nn.ReLU(), nn.Linear(9, 1))
try:
    d2p.load(bad, path)
except d2p.StateDictError as err:
    print(type(err).__name__, sorted(err.mismatched)[:2])
