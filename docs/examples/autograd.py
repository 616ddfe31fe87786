import numpy as np

import d2lparams as d2p
from d2lparams import ops

d2p.seed(0)
x = d2p.ones(5)  # input tensor
y = d2p.zeros(3)  # expected output
w = d2p.randn(5, 3, requires_grad=True)
b = d2p.randn(3, requires_grad=True)


def loss_fn():
    z = ops.matmul(x, w) + b
    return ops.binary_cross_entropy_with_logits(z, y)


loss = d2p.backward(loss_fn)  # PyTorch: loss.backward()
print(f"loss {loss:.4f}")
print(d2p.grad_of(w))  # PyTorch: w.grad
print(d2p.grad_of(b))
gw, gb = d2p.grad(loss_fn, [w, b])  # torch.autograd.grad: .grad untouched
print(np.allclose(gw, d2p.grad_of(w)), np.allclose(gb, d2p.grad_of(b)))

z_det = d2p.detach(ops.matmul(x, w) + b)  # no gradient flows through z_det

inp = ops.eye(4, 5, requires_grad=True)


def out():
    return ops.transpose(ops.pow(inp + 1, 2), 0, 1)


d2p.backward(out, gradient=np.ones((5, 4)))  # PyTorch: out.backward(torch.ones_like(out))
print(f"First call\n{d2p.grad_of(inp)}")
d2p.backward(out, gradient=np.ones((5, 4)))
print(f"\nSecond call\n{d2p.grad_of(inp)}")
d2p.zero_grad(inp)  # PyTorch: inp.grad.zero_()
d2p.backward(out, gradient=np.ones((5, 4)))
print(f"\nCall after zeroing gradients\n{d2p.grad_of(inp)}")
