import numpy as np

from d2lparams import nn

net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
                    nn.Conv2d(5, 16, 5))        # 5: should be 6
for X in (np.zeros((28, 28), np.float32), np.zeros((2, 1, 28, 28), np.float32)):
    try:
        net(X)
    except ValueError as error:
        print(error)

conv = nn.Conv2d(1, 6, 5)
try:
    conv.weight.set(np.zeros((5, 5, 1, 6)))   # Keras' own (kh, kw, in, out) order
except ValueError as error:
    print(error)
