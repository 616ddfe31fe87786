import numpy as np

import d2lparams as d2p
from d2lparams import init, nn, ops, optim

d2p.seed(0)
X = d2p.randn(32, 4)
y = d2p.tensor(d2p.to_numpy(X) @ np.array([[2.0], [-3.4], [1.0], [0.5]]) + 4.2)
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
init.reset_(net, "torch")             # the same start on every backend
opt = optim.SGD([{"params": net[0].parameters(), "lr": 0.001, "momentum": 0.99},
                 {"params": net[2].parameters()}], lr=0.01, momentum=0.9)
sched = optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 20], gamma=0.1)
for epoch in range(30):
    opt.zero_grad()
    loss = d2p.backward(lambda: ops.mean((net(X) - y) * (net(X) - y)))
    opt.step()
    sched.step()
    if epoch % 10 == 9:
        print(epoch + 1, f"{loss:.4f}", [f"{lr:g}" for lr in sched.get_last_lr()])
