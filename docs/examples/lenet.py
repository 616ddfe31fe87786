import numpy as np

import d2lparams as d2p
from d2lparams import chapter, init

d2p.seed(0)
net = chapter.lenet()                  # d2l's LeNet, built on the current backend
weight, bias = init.default_scheme(d2p.get_backend()).rule("conv2d")
print("built with the framework's own conv init:", weight.describe(), "and", bias.describe())
init.reset_(net, "torch")              # one set of weights on every backend
print(net[0], net[2], net[6], sep="\n")
for name, p in net.named_parameters():
    if name.endswith("weight"):
        print(f"{name:9} {str(p.shape):15} stored as {p.native_shape}")
print(d2p.summary(net, (1, 1, 28, 28)).splitlines()[-2])
X = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)  # NCHW everywhere
print(np.round(d2p.to_numpy(net(X))[0], 4))
