"""The shifted depthwise convolution on JAX, with a hand-written gradient.

:class:`~keras_efficientnet.layers.ShiftedDepthwiseConv2D` computes a kxk depthwise
convolution as k×k shifted multiply-adds, which XLA fuses into one loop. Left to JAX's
autodiff, the backward pass of that sum is much slower than the forward pass on CPU:

* the kernel gradient becomes k×k separate reductions of ``slice(x) * g`` over the batch and
  both spatial axes, each slice materialised and reduced on its own: 3-20x the forward time
  for MBConv's shapes (2-core CPU, batch 16);
* the input gradient becomes k×k padded copies of ``g * w`` summed: for 5x5 kernels
  4-7x the forward time.

The gradient here computes the same numbers a different way:

* kernel gradient: one variadic ``lax.reduce`` over the width axis that accumulates all k×k
  products in a single pass over ``x`` and ``g`` (the batch and height axes stay, so the loop
  is split over them), then a small sum over batch and height;
* input gradient at stride 1: the "full" correlation of ``g`` with the flipped kernel, which is
  again a fused k×k multiply-add loop like the forward pass;
* input gradient at stride 2: the same, per output phase (polyphase): each of the four
  (row, column) parities of the input receives the taps of that parity only, as a stride-1
  correlation with a sub-kernel, and the four phases are interleaved once.

Depthwise gradients (input and kernel together) measured 1.5-3.6x faster than autodiff's
for B0's shapes, and the whole B0 training step 1.6x faster (2-core CPU, batch 16, 224 px;
docs/benchmarks.md). Values agree with autodiff's and with ``keras.layers.DepthwiseConv2D``'s
gradients to float rounding (about 2e-7 relative; tests/test_depthwise.py).
"""

from __future__ import annotations

import functools

from .depthwise_ops import _correlate, _window


def _spatial_pad(x, before_h, after_h, before_w, after_w, channels_last):
    import jax.numpy as jnp

    if not any((before_h, after_h, before_w, after_w)):
        return x
    h, w = (before_h, after_h), (before_w, after_w)
    return jnp.pad(x, ((0, 0), h, w, (0, 0)) if channels_last else ((0, 0), (0, 0), h, w))


def _full_correlation(g, taps, out_h, out_w, channels_last):
    """``out[a, b] = sum_mn g[a - m, b - n] * taps[m, n]`` for ``a < out_h``, ``b < out_w``
    (``g`` zero outside its extent): the adjoint of a stride-1 valid correlation."""
    kh, kw = taps.shape[0], taps.shape[1]
    gh, gw = (g.shape[1], g.shape[2]) if channels_last else (g.shape[2], g.shape[3])
    gp = _spatial_pad(g, kh - 1, out_h - gh, kw - 1, out_w - gw, channels_last)
    return _correlate(gp, taps[::-1, ::-1], 1, out_h, out_w, channels_last)


def _input_grad(g, taps, strides, padded_h, padded_w, channels_last):
    """Gradient with respect to the padded input of ``_correlate(xp, taps, strides, ...)``."""
    import jax.numpy as jnp

    if strides == 1:
        return _full_correlation(g, taps, padded_h, padded_w, channels_last)
    # stride 2: input row 2a + p only meets taps of row parity p; likewise for columns.
    half_h, half_w = -(-padded_h // 2), -(-padded_w // 2)
    rows = []
    for p in (0, 1):
        cols = []
        for q in (0, 1):
            sub = taps[p::2, q::2]
            if sub.shape[0] == 0 or sub.shape[1] == 0:  # 1x1 kernel: odd phases get nothing
                shape = (g.shape[0], half_h, half_w, g.shape[3]) if channels_last \
                    else (g.shape[0], g.shape[1], half_h, half_w)
                cols.append(jnp.zeros(shape, g.dtype))
            else:
                cols.append(_full_correlation(g, sub, half_h, half_w, channels_last))
        rows.append(jnp.stack(cols))
    phases = jnp.stack(rows)  # (2, 2, N, A, B, C) or (2, 2, N, C, A, B)
    if channels_last:
        n, a, b, c = phases.shape[2:]
        out = jnp.transpose(phases, (2, 3, 0, 4, 1, 5)).reshape(n, 2 * a, 2 * b, c)
        return out[:, :padded_h, :padded_w, :]
    n, c, a, b = phases.shape[2:]
    out = jnp.transpose(phases, (2, 3, 4, 0, 5, 1)).reshape(n, c, 2 * a, 2 * b)
    return out[:, :, :padded_h, :padded_w]


def _kernel_grad(xp, g, k, strides, channels_last):
    """``d/dtaps`` of ``sum(g * _correlate(xp, taps, ...))``: shape ``(k, k, C)``."""
    import jax.numpy as jnp
    from jax import lax

    out_h, out_w = (g.shape[1], g.shape[2]) if channels_last else (g.shape[2], g.shape[3])
    # Accumulate in float32 under mixed precision: these are sums over a whole batch.
    acc = jnp.promote_types(g.dtype, jnp.float32)
    xp, g = xp.astype(acc), g.astype(acc)
    products = tuple(_window(xp, i, j, strides, out_h, out_w, channels_last) * g
                     for i in range(k) for j in range(k))
    width_axis = 2 if channels_last else 3
    sums = lax.reduce(products, tuple(jnp.zeros((), acc) for _ in products),
                      lambda a, b: tuple(u + v for u, v in zip(a, b)), (width_axis,))
    # each sum: (N, H_out, C) or (N, C, H_out)
    totals = jnp.stack(sums).sum(axis=(1, 2) if channels_last else (1, 3))
    return totals.reshape(k, k, -1)


@functools.lru_cache(maxsize=None)
def shifted_depthwise_fn(k: int, strides: int, pads_h: tuple, pads_w: tuple,
                         channels_last: bool):
    """A JAX function ``f(x, kernel)`` for one static configuration, with a custom VJP.

    ``kernel`` has shape ``(k, k, C, 1)``; ``pads_h`` / ``pads_w`` are the (before, after)
    zero padding of the two spatial axes. Same values as the plain shifted sum; one function
    is made (and cached) per configuration, so JAX traces its gradient rule once.

    Example:
        >>> import jax, numpy as np
        >>> from keras_efficientnet.layers.depthwise_jax import shifted_depthwise_fn
        >>> conv = shifted_depthwise_fn(3, 2, (0, 1), (0, 1), True)  # 3x3, stride 2, "same"
        >>> x, kernel = np.ones((1, 6, 6, 2), "float32"), np.ones((3, 3, 2, 1), "float32")
        >>> tuple(conv(x, kernel).shape)
        (1, 3, 3, 2)
        >>> dx, dk = jax.grad(lambda x, k: conv(x, k).sum(), argnums=(0, 1))(x, kernel)
        >>> tuple(dx.shape), tuple(dk.shape)
        ((1, 6, 6, 2), (3, 3, 2, 1))
    """
    import jax

    def padded(x):
        return _spatial_pad(x, *pads_h, *pads_w, channels_last)

    def out_size(x):
        h, w = (x.shape[1], x.shape[2]) if channels_last else (x.shape[2], x.shape[3])
        hp, wp = h + sum(pads_h), w + sum(pads_w)
        return hp, wp, (hp - k) // strides + 1, (wp - k) // strides + 1

    @jax.custom_vjp
    def depthwise(x, kernel):
        _, _, out_h, out_w = out_size(x)
        return _correlate(padded(x), kernel[..., 0], strides, out_h, out_w, channels_last)

    def forward(x, kernel):
        return depthwise(x, kernel), (x, kernel)

    def backward(residuals, g):
        x, kernel = residuals
        hp, wp, _, _ = out_size(x)
        h, w = hp - sum(pads_h), wp - sum(pads_w)
        dxp = _input_grad(g, kernel[..., 0].astype(g.dtype), strides, hp, wp, channels_last)
        top, left = pads_h[0], pads_w[0]
        dx = dxp[:, top:top + h, left:left + w, :] if channels_last \
            else dxp[:, :, top:top + h, left:left + w]
        dk = _kernel_grad(padded(x), g, k, strides, channels_last)
        return dx.astype(x.dtype), dk[..., None].astype(kernel.dtype)

    depthwise.defvjp(forward, backward)
    return depthwise
