"""``hfagp train``: train one driver of one subject (HFA-GP's avatar; see :mod:`hfagp.avatar.training`).

Writes ``checkpoint.pt`` (only once training finished) and, beside it,
``tensorboard/``, ``samples/step_XXXXXX.png``, ``metrics.json`` and, while
unfinished, ``resume.pt``: rerunning the same command resumes from it.
Multi-GPU: ``torchrun --nproc_per_node N -m hfagp train ...`` (DDP; batch
size is per process).
"""

from __future__ import annotations

import argparse

# No torch import here: the CLI must start fast.


def _run(args: argparse.Namespace) -> None:
    from hfagp.avatar.settings import TrainPaths, TrainSettings
    from hfagp.avatar.training import train

    settings = TrainSettings(
        kind=args.driver,
        steps=args.steps,
        tune_iter=args.tune_iter,
        lr=args.lr,
        generator_lr=args.generator_lr,
        batch_size=args.batch_size,
        resolution=args.resolution or None,
        rgb_resolution=args.rgb_resolution,
        driver_width=args.driver_width,
        mse_weight=args.mse_weight,
        lpips_weight=args.lpips_weight,
        ssim_weight=args.ssim_weight,
        face_ssim_weight=args.face_ssim_weight,
        distortion_weight=args.distortion_weight,
        distortion_from=args.distortion_from,
        lpips_backbone=args.lpips_backbone,
        lpips_weights=args.lpips_weights,
        smoothing_start=args.smoothing_start,
        smoothing_window=args.smoothing_window,
        ema_decay=args.ema_decay,
        warm_start_steps=args.warm_start_steps,
        checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every,
        log_every=args.log_every,
        device=args.device,
        seed=args.seed,
    )
    paths = TrainPaths(
        crops=args.crops,
        cameras=args.cameras,
        split=args.split,
        prior=args.prior,
        generator_json=args.generator_json,
        output=args.output,
        expressions=args.expressions,
        audio_features=args.audio_features,
        latents=args.latents,
        person_out=args.person_out,
    )
    train(settings, paths, threads=args.threads)


def register(subparsers) -> None:
    """Add ``hfagp train``."""
    parser = subparsers.add_command(
        "train",
        help="train a driver (rgb, expression or audio) of the personal avatar -> driver/<kind>/checkpoint.pt",
        description=__doc__,
    )
    parser.add_argument("--driver", required=True, choices=["rgb", "expression", "audio"], help="driving signal")
    parser.add_argument("--crops", required=True, help="crops/ directory (stage align)")
    parser.add_argument("--cameras", required=True, help="cameras.parquet (stage align)")
    parser.add_argument("--split", required=True, help="split.json (train/test frames)")
    parser.add_argument("--prior", required=True, help="prior.npz (stage prior): initial mean latent and basis")
    parser.add_argument("--generator-json", required=True, help="inversion/generator.json: the generator the prior was built with")
    parser.add_argument("--expressions", help="expressions.parquet (needed by --driver expression)")
    parser.add_argument("--audio-features", help="audio_features.npy (N,16,29) (needed by --driver audio)")
    parser.add_argument("--latents", help="inversion/latents.pt: the warm start's targets (needed by --warm-start-steps > 0)")
    parser.add_argument("-o", "--output", required=True, help="output checkpoint.pt (other outputs go beside it)")
    parser.add_argument("--person-out", help="also write this avatar's person fit (generator, prior.npz, latents.pt) to this folder")
    parser.add_argument("--steps", type=int, default=100_000, help="training iterations (default 100000)")
    parser.add_argument("--tune-iter", type=int, default=50_000, help="the generator is frozen for this many steps (default 50000)")
    parser.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    parser.add_argument("--generator-lr", type=float, default=None, help="learning rate of the generator once tuned (default: --lr)")
    parser.add_argument("--batch-size", type=int, default=1, help="frames per step and process (default 1; authors: 2 for rgb)")
    parser.add_argument("--resolution", type=int, default=0, help="training image size (0 = min(256, generator size))")
    parser.add_argument("--rgb-resolution", type=int, default=256, help="input size of the RGB driver's encoder (default 256)")
    parser.add_argument("--driver-width", type=float, default=1.0, help="channel multiplier of the RGB encoder (default 1.0)")
    parser.add_argument("--mse-weight", type=float, default=1.0)
    parser.add_argument("--lpips-weight", type=float, default=1.0, help="ignored (with a warning) without LPIPS weights")
    parser.add_argument("--ssim-weight", type=float, default=0.0, help="weight of a 1 - SSIM loss term (default 0 = off)")
    parser.add_argument(
        "--face-ssim-weight", type=float, default=0.0,
        help="weight of a 1 - SSIM term averaged over the face (the crops' landmarks; default 0 = off)",
    )
    parser.add_argument(
        "--distortion-weight", type=float, default=0.0,
        help="weight of the ray distortion of the neural rendering (Mip-NeRF 360; default 0 = off, as HFA-GP)",
    )
    parser.add_argument(
        "--distortion-from", type=float, default=0.0,
        help="fraction of the steps after which the distortion term is on (default 0 = from the start)",
    )
    parser.add_argument("--lpips-backbone", choices=["alex", "vgg"], default="alex")
    parser.add_argument("--lpips-weights", help="torchvision backbone .pth (default: the torch hub cache)")
    parser.add_argument("--smoothing-start", type=int, default=300_000, help="audio: step from which the attention smoothing is used")
    parser.add_argument("--smoothing-window", type=int, default=8, help="audio: neighbouring frames smoothed over (default 8)")
    parser.add_argument(
        "--ema-decay", type=float, default=0.999,
        help="the avatar keeps a moving average of the weights with this decay (default 0.999; 0 = the last iterate)",
    )
    parser.add_argument(
        "--warm-start-steps", type=int, default=0,
        help="regress the driver onto the inverted latents' subspace weights for this many steps first (default 0 = off)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="steps between resume checkpoints")
    parser.add_argument("--sample-every", type=int, default=1000, help="steps between sample grids / test evaluations")
    parser.add_argument("--log-every", type=int, default=10, help="steps between TensorBoard scalars")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (under torchrun: each process's local GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = torch's default)")
    parser.set_defaults(func=_run)
