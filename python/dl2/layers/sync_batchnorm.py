"""Synchronised batch normalisation: training statistics of the global batch, over every MPI rank."""
import numpy as np

import fastconv

from ..module import Module
from .normalization import BatchNorm1D, BatchNorm2D, _BatchNorm

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]


class SyncBatchNorm(_BatchNorm, Module):
    """Batch norm of ``(N, F)`` or ``(N, C, H, W)`` batches whose training statistics are those of the GLOBAL
    batch: the per-channel mean and biased variance over the samples of every rank of
    :func:`dl2.distributed.world` (one ``MPI_Allgather`` of count, mean and sum of squared deviations per
    channel, combined in float64 in the same order on every rank). The backward pass all-reduces
    ``sum(dy)`` and ``sum(dy * xhat)`` once, so the gradients are those of batch norm on the concatenated batch.

    It assumes what :class:`dl2.distributed.DataParallel` does: each rank's loss is the mean over its own slice
    and the ranks' gradients are added with weights ``n_rank / n_global``. Evaluation uses the running
    statistics (updated from the global statistics, identical on every rank), with no communication.
    In a world of one it computes what :class:`BatchNorm1D` / :class:`BatchNorm2D` compute (up to rounding).
    ``num_features`` is inferred at build; if given it must match. Training needs at least 2 values per
    channel over all the ranks together.
    """

    def __init__(self, num_features=None, eps=1e-5, momentum=0.1, affine=True):
        super().__init__(num_features, eps, momentum, affine)

    def _build(self, input_shape, dtype, rng):
        self._layout = ("F",) if len(input_shape) == 1 else ("C", "H", "W")
        return super()._build(input_shape, dtype, rng)

    def _axes(self, x):
        return (0,) if x.ndim == 2 else (0, 2, 3)

    def _per_channel(self, v, x):
        return v.reshape((1, -1) + (1,) * (x.ndim - 2))

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        from ..distributed import world
        x = self._input(x, "channels" if len(self._layout) == 3 else "exact")
        gamma, beta = self._affine()
        axes, c = self._axes(x), x.shape[1]
        m = x.size // c
        local = np.zeros((1, 2 * c + 1))
        local[0, 0] = m
        if m:
            local[0, 1:c + 1] = x.mean(axis=axes, dtype=np.float64)
            local[0, c + 1:] = np.square(x - self._per_channel(local[0, 1:c + 1], x)).sum(axis=axes)
        w = world()
        if w.size > 1:
            every = np.empty((w.size, 2 * c + 1))
            w.comm.Allgather(local, every)
        else:
            every = local
        counts, means, m2s = every[:, :1], every[:, 1:c + 1], every[:, c + 1:]
        total = float(counts.sum())
        if total < 2:
            raise ValueError(f"SyncBatchNorm: training needs more than one value per channel over all the ranks "
                             f"to estimate a variance, got {int(total)} (input shape {x.shape} here)")
        mean = (counts * means).sum(axis=0) / total
        var = (m2s + counts * np.square(means - mean)).sum(axis=0) / total
        self._x = x
        self._train_stats = (mean.astype(self.dtype), (1 / np.sqrt(var + self.eps)).astype(self.dtype),
                             total, m)
        mom = self.momentum
        self.running_mean[...] = (1 - mom) * self.running_mean + mom * mean
        self.running_var[...] = (1 - mom) * self.running_var + mom * var * (total / (total - 1))
        return fastconv.batchnorm_inference(x, gamma, beta, mean.astype(self.dtype), var.astype(self.dtype),
                                            self.eps)

    def backward(self, dy):
        if self._train_stats is None:
            return super().backward(dy)
        from ..distributed import world
        mean, invstd, total, m = self._train_stats
        x = self._x
        dy = np.asarray(dy, dtype=self.dtype)
        gamma, _ = self._affine()
        axes, c = self._axes(x), x.shape[1]
        xhat = (x - self._per_channel(mean, x)) * self._per_channel(invstd, x)
        local = np.concatenate([dy.sum(axis=axes, dtype=np.float64), (dy * xhat).sum(axis=axes, dtype=np.float64)])
        if self.affine:
            self.gamma.grad += local[c:].astype(self.dtype)
            self.beta.grad += local[:c].astype(self.dtype)
        if not self.needs_input_grad:
            return None
        # The global loss weights this rank's loss by its share m / total of the batch: the sums of the global
        # upstream gradient are sum_r share_r * sum(dy_r) (and likewise with xhat); dx is returned in this
        # rank's units (divided by its share), as every other gradient of this rank.
        share = m / total
        sums = world().sum(local * share)
        coef = self._per_channel((gamma * invstd).astype(np.float64), x)
        dx = coef * (dy - (self._per_channel(sums[:c], x) + xhat * self._per_channel(sums[c:], x)) / m)
        return dx.astype(self.dtype)


def convert_sync_batchnorm(model):
    """Replace every built :class:`BatchNorm1D` / :class:`BatchNorm2D` inside ``model`` by a
    :class:`SyncBatchNorm` with the same settings, parameters (the same :class:`~dl2.Parameter` objects, so an
    optimizer made earlier still holds them) and running statistics. Returns ``model`` (changed in place);
    a bare batch-norm layer is returned converted."""
    if isinstance(model, (BatchNorm1D, BatchNorm2D)):
        return _converted(model)
    for parent in model.modules():
        for name, child in list(parent._modules.items()):
            if isinstance(child, (BatchNorm1D, BatchNorm2D)):
                new = _converted(child)
                parent._modules[name] = new                # same place: parameter order unchanged
                object.__setattr__(parent, name, new)
                for value in vars(parent).values():      # containers that also keep their layers in a list
                    if isinstance(value, list):
                        value[:] = [new if v is child else v for v in value]
    return model


def _converted(bn):
    if not bn.built:
        raise ValueError(f"convert_sync_batchnorm: build the model first ({type(bn).__name__} is not built)")
    new = SyncBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine)
    new._layout = bn._layout
    new.input_shape, new.output_shape, new.dtype, new.built = bn.input_shape, bn.output_shape, bn.dtype, True
    new.num_features = bn.num_features
    new.needs_input_grad = bn.needs_input_grad
    new.training = bn.training
    if bn.affine:
        new.gamma, new.beta = bn.gamma, bn.beta
    else:
        new._const_gamma, new._const_beta = bn._const_gamma, bn._const_beta
    new.register_buffer("running_mean", bn.running_mean)
    new.register_buffer("running_var", bn.running_var)
    return new
