import d2lparams as d2p
from d2lparams import nn


def block1():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())


def block2():
    net = nn.Sequential()
    for i in range(4):
        net.add_module(f"block {i}", block1())
    return net


d2p.seed(0)
rgnet = nn.Sequential(block2(), nn.Linear(4, 1))
print(rgnet[0]["block 0"])
print([name for name, _ in rgnet.named_parameters()][:4])
print(rgnet[0][1][0].bias.shape)
print(rgnet.num_parameters(), "parameters")
