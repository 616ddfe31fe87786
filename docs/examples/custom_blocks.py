import d2lparams as d2p
from d2lparams import nn, ops


class CenteredLayer(nn.Module):
    def forward(self, X):
        return X - ops.mean(X)


class MyLinear(nn.Module):
    def __init__(self, in_units, units):
        super().__init__()
        self.weight = nn.Parameter(d2p.randn(in_units, units))
        self.bias = nn.Parameter(d2p.randn(units))

    def forward(self, X):
        return ops.relu(ops.matmul(X, self.weight) + self.bias)


d2p.seed(0)
print(d2p.to_numpy(CenteredLayer()(d2p.tensor([1, 2, 3, 4, 5]))))
net = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))
print(net)
print([name for name, _ in net.named_parameters()])
loss = d2p.backward(lambda: ops.sum(net(d2p.rand(2, 64))))
print(round(loss, 3), net[0].weight.grad.shape)
