import numpy as np

import d2lparams as d2p
from d2lparams import init, nn, ops, optim

d2p.seed(0)
X = d2p.randn(32, 4)
y = d2p.tensor(d2p.to_numpy(X) @ np.array([[2.0], [-3.4], [1.0], [0.5]]) + 4.2)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
init.reset_(net, "torch")             # the same start on every backend
eager = d2p.to_numpy(net(X))
net = d2p.compile(net)                # the same object, compiled from its next call on
print("as eager:", np.allclose(d2p.to_numpy(net(X)), eager, atol=1e-6))
opt = optim.SGD(net.parameters(), lr=0.01)
for epoch in range(30):
    opt.zero_grad()
    loss = d2p.backward(lambda: ops.mean((net(X) - y) * (net(X) - y)))
    opt.step()
    if epoch % 10 == 9:
        print(epoch + 1, f"{loss:.3f}")
print(list(net.state_dict()))         # the same names (no "_orig_mod." prefix)
