import d2lparams as d2p
from d2lparams import init, nn

d2p.seed(0)
lin = nn.Linear(1000, 1000)             # the framework's own default initialization
w, b = lin.weight.numpy(), lin.bias.numpy()
print(init.default_scheme(d2p.get_backend()))
print(f"weight in [{w.min():.4f}, {w.max():.4f}], std {w.std():.4f}; bias std {b.std():.4f}")

init.reset_(lin, "torch")               # any framework's scheme, portably
print(f"after reset_(torch): weight std {lin.weight.numpy().std():.4f}")
