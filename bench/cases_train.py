"""Training-step cases: one SGD step (forward, softmax cross-entropy, backward, update) of every model of the zoo
(``dl2.models.REGISTRY``), in dl2 on fastconv, in PyTorch (the same network, same initial weights:
:mod:`torch_twin`) and, for the book's nets, as the same dl2 model on the :mod:`fastconv.reference` kernels.

Every model is built for ``1x28x28`` inputs (the small variants of the classic architectures) and 10 classes,
float32, seed 0; batch 100 for the book's networks (:data:`BOOK_NETS`), 128 for the others; random images and
labels. Auxiliary heads (GoogLeNet) add their weighted losses as ``dl2.Trainer`` does. None of the steps
computes the gradient of the images.

Targets: dl2 / PyTorch <= 0.8x, and that ratio no higher than the one stored in ``bench/baseline_zoo.json``
(the same table measured on the kernels of commit 1abc5a3, before the convolution engine).
"""
import numpy as np


from fcbench import Case, smoke

#: The networks of Saito's book (and LeNet-5): batch 100; every other model of the zoo: batch 128.
BOOK_NETS = ("mlp", "simple_conv_net", "double_conv_net", "deep_conv_net", "lenet5")
BOOK_BATCH, BATCH, SMOKE_BATCH = 100, 128, 4
INPUT_SHAPE = (1, 28, 28)
CLASSES = 10
LR = 0.01


def batch_size(name):
    """The benchmark batch of zoo model ``name`` (tiny in smoke runs)."""
    if smoke():
        return SMOKE_BATCH
    return BOOK_BATCH if name in BOOK_NETS else BATCH


def build_model(name, seed=0, dtype=np.float32):
    """Zoo model ``name`` built for ``1x28x28``, with ``needs_input_grad = False`` as ``dl2.Trainer`` sets it."""
    import dl2

    model = dl2.models.get(name, INPUT_SHAPE, CLASSES, dtype=dtype, seed=seed)
    model.needs_input_grad = False      # nobody needs the gradient wrt the images
    return model


def batch(n, seed=0, dtype=np.float32):
    """``(x, t)``: ``n`` random images in [0, 1) and labels."""
    rng = np.random.default_rng(seed + 100)
    return rng.random((n,) + INPUT_SHAPE).astype(dtype), rng.integers(0, CLASSES, n)


class Dl2Step:
    """One SGD step of a dl2 model, auxiliary-head losses included (as ``dl2.Trainer`` does)."""

    def __init__(self, model, lr=LR):
        import dl2

        self.model = model
        self.loss = dl2.SoftmaxCrossEntropy()
        self.opt = dl2.optim.SGD(model.parameters(), lr=lr)
        self.has_aux = bool(dl2.containers.aux_heads(model))

    def __call__(self, x, t):
        import dl2

        self.opt.zero_grad()
        value = self.loss(self.model.forward(x), t)
        dy = self.loss.backward()
        if self.has_aux:
            value += dl2.auxiliary_loss(self.model, self.loss, t)
        self.model.backward(dy)
        self.opt.step()
        return value

    def params(self):
        return [p.data for p in self.model.parameters()]


class TorchStep:
    """The same step on the model's :func:`torch_twin.twin` with ``torch.optim.SGD``."""

    def __init__(self, dl2_model, lr=LR):
        import torch
        import torch_twin

        self.torch = torch
        self.twin = torch_twin.twin(dl2_model)
        self.model = self.twin.module
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)
        self._inputs = None

    def __call__(self, x, t):
        torch = self.torch
        cross_entropy = torch.nn.functional.cross_entropy
        if self._inputs is None or self._inputs[0] is not x:
            self._inputs = (x, torch.from_numpy(x), torch.from_numpy(np.asarray(t, dtype=np.int64)))
        _, xt, tt = self._inputs
        self.opt.zero_grad(set_to_none=True)
        loss = cross_entropy(self.model(xt), tt)
        for head in self.twin.aux_heads:
            if head.aux_output is not None and head.weight:
                loss = loss + head.weight * cross_entropy(head.aux_output, tt)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def params(self):
        return self.twin.parameters()


class ReferenceStep(Dl2Step):
    """The same dl2 step with every kernel from :mod:`fastconv.reference` (``dl2.use_backend("reference")``):
    what the readable NumPy specification costs. Timed for the book's networks only (:data:`BOOK_NETS`): on the
    larger models a NumPy step takes seconds."""

    def __call__(self, x, t):
        import dl2

        with dl2.use_backend("reference"):
            return super().__call__(x, t)


STEPS = {"fastconv": Dl2Step, "reference": ReferenceStep, "torch": TorchStep}


def make_step(name, impl, n=None, seed=0):
    """``(step, x, t)``: a training step of zoo model ``name`` in ``impl`` (``fastconv`` = dl2) and a batch."""
    model = build_model(name, seed)
    x, t = batch(batch_size(name) if n is None else n, seed)
    return STEPS[impl](model), x, t


def _train_step(case, impl):
    step, x, t = make_step(case.params["model"], impl)
    return (lambda: step(x, t)), lambda loss: (np.asarray(loss),)


def train_cases():
    """One case per zoo model, in registry-name order."""
    import dl2

    cases = []
    for name in dl2.models.names():
        model = build_model(name)
        n = batch_size(name)
        impls = ("fastconv", "reference", "torch") if name in BOOK_NETS else ("fastconv", "torch")
        cases.append(Case("train", "training step", f"{name} batch {n}", _train_step,
                          {"model": name, "batch": n, "parameters": model.num_parameters()}, impls=impls,
                          targets=(("torch_ratio", "<=", 0.8), ("baseline_ratio", "<=", 1.0))))
    return cases
