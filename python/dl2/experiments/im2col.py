"""im2col and col2im: how a convolution becomes one matrix product ("Deep Learning from Scratch" ch. 7.4), and
why col2im is the adjoint of im2col rather than its inverse."""
import numpy as np

import fastconv

TITLE = "col2im(im2col(x)) = x * (number of windows covering each pixel)"
LESSON = ("im2col copies every receptive field into one row, so a convolution is a single matrix product "
          "cols @ W.reshape(K, -1).T. col2im sums each row back into place: it is the adjoint (transpose) of "
          "im2col -- exactly what the backward pass needs -- not its inverse. Where windows overlap a pixel is "
          "counted once per window, so col2im(im2col(x)) multiplies x by the count map; with stride = kernel size "
          "and no padding the windows tile the image and the count map is all ones.")

#: (kernel, stride, padding) geometries shown, on a (N=2, C=3, 7, 7) input
GEOMETRIES = [(3, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0), (5, 2, 2)]
SHAPE = (2, 3, 7, 7)


def run(ctx):
    rng = np.random.default_rng(ctx.seed)
    x = rng.standard_normal(SHAPE)
    demo = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    demo_cols = fastconv.im2col(demo, 3, 1, 0)
    cases = []
    for k, s, p in GEOMETRIES:
        cols = fastconv.im2col(x, k, s, p)
        back = fastconv.col2im(cols, x.shape, k, s, p)
        count = back / x                                   # per-pixel multiplier, identical for every n and c
        count_map = np.rint(count[0, 0]).astype(int)
        oh = (SHAPE[2] + 2 * p - k) // s + 1
        ow = (SHAPE[3] + 2 * p - k) // s + 1
        w = rng.standard_normal((4, SHAPE[1], k, k))
        via_matmul = (cols @ w.reshape(4, -1).T).reshape(SHAPE[0], oh, ow, 4).transpose(0, 3, 1, 2)
        direct = fastconv.conv2d_forward(x, w, None, s, p)
        cases.append({
            "kernel": k, "stride": s, "padding": p, "input_shape": list(SHAPE), "cols_shape": list(cols.shape),
            "output_hw": [oh, ow], "count_map": count_map.tolist(),
            "count_same_for_all_channels": bool(np.allclose(count, count_map[None, None])),
            "conv_via_im2col_max_error": float(np.max(np.abs(via_matmul - direct))),
        })
    return {"data": f"random input {SHAPE}; demo input 1..16 as (1, 1, 4, 4)",
            "demo": {"input": demo[0, 0].tolist(), "kernel": 3, "cols": demo_cols.tolist(),
                     "col2im_of_im2col": fastconv.col2im(demo_cols, demo.shape, 3, 1, 0)[0, 0].tolist()},
            "cases": cases}


def report(result):
    demo = result["demo"]
    lines = ["demo: a 4x4 image, 3x3 kernel, stride 1 -> 2x2 windows -> cols (4 windows x 9 values):"]
    lines += ["  " + " ".join(f"{v:4.0f}" for v in row) for row in demo["cols"]]
    lines.append("col2im(cols):")
    lines += ["  " + " ".join(f"{v:4.0f}" for v in row) for row in demo["col2im_of_im2col"]]
    lines.append("")
    lines.append(f"{'kernel/stride/pad':<19}{'cols shape':>14}{'out HxW':>9}{'conv error':>12}  count map")
    for c in result["cases"]:
        geometry = f"{c['kernel']}/{c['stride']}/{c['padding']}"
        first = " ".join(map(str, c["count_map"][0]))
        lines.append(f"{geometry:<19}{str(tuple(c['cols_shape'])):>14}{'x'.join(map(str, c['output_hw'])):>9}"
                     f"{c['conv_via_im2col_max_error']:>12.1e}  row 0: {first}")
    return lines


def plot(result, plt):
    cases = result["cases"]
    fig, axes = plt.subplots(1, len(cases) + 1, figsize=(3.0 * (len(cases) + 1), 3.4))
    cols = np.asarray(result["demo"]["cols"])
    axes[0].imshow(cols, cmap="viridis", aspect="auto")
    axes[0].set_title("im2col of 1..16 (4x4), k=3\nrows: windows, columns: (c, u, v)", fontsize=8)
    for ax, c in zip(axes[1:], cases):
        m = np.asarray(c["count_map"])
        ax.imshow(m, cmap="Blues", vmin=0)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
        ax.set_title(f"k={c['kernel']} s={c['stride']} p={c['padding']}\ncols {tuple(c['cols_shape'])}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(TITLE, fontsize=10)
    return fig
