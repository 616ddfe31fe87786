import d2lparams as d2p
from d2lparams import data, init, nn, ops, optim

X, y = data.synthetic_images(1280, seed=0)  # 10 classes of 28x28 images, made by NumPy
loss_fn = nn.CrossEntropyLoss()


def accuracy(logits, labels):
    correct = ops.astype(ops.argmax(logits, 1) == labels, "float32")
    return d2p.to_numpy(ops.mean(correct)).item()


def train(net, lr, batch_size=64):
    d2p.seed(1)  # d2l's initialization, the same on every backend
    for name, p in net.named_parameters():
        init.normal_(p, std=0.01) if name.endswith("weight") else init.zeros_(p)
    opt = optim.SGD(net.parameters(), lr=lr)
    for step, (Xb, yb) in enumerate(data.minibatches(X, y, batch_size), 1):
        Xb, yb = d2p.tensor(Xb), d2p.tensor(yb, dtype="int64")
        opt.zero_grad()
        loss = d2p.backward(lambda: loss_fn(net(Xb), yb))  # noqa: B023 - runs right away
        opt.step()
        if step % 5 == 0:
            print(f"  step {step:2d}  loss {loss:.4f}  batch accuracy {accuracy(net(Xb), yb):.3f}")


print("softmax regression")
train(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), lr=0.1)
print("MLP")
train(nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)), lr=0.3)
