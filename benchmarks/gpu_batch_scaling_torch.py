"""GPU proxy: per-image cost of a MACO step as more images share it, in PyTorch.

The machines this project can borrow GPUs on have PyTorch and no TensorFlow (and cannot
install it), so ``bench_engine.py --objectives 1,4,8`` cannot run there. This script times
the same *work* that one ``maco_tf`` step does for N images, written in PyTorch, to tell how
the per-image cost of the step falls with N on a GPU (what batching objectives buys) and
where it stops falling (which sizes the automatic ``batch_size`` should aim for):

- synthesis: standardised phase, fixed magnitude, inverse real FFT (N x 3 x 512 x 257),
  standardisation, colour mixing, sigmoid;
- 16 random bilinear crops per image resized to 224 (``grid_sample``), plus noise;
- EfficientNet-Lite0 (timm's architecture, random weights: no download) forward and
  backward to the input, one logit per image;
- Adam-style update of the phases and the transparency accumulation.

It is a proxy of ``maco_tf``'s step, not a measurement of it; docs/performance.md reports it as
such. Timed with CUDA events after warm-up, median of ``--repeats`` steps.

    python benchmarks/gpu_batch_scaling_torch.py --sizes 1,2,4,8,16,32,64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F  # noqa: N812

# Lucid's / Xplique's colour correlation (see maco_tf.core.color).
COLOR = torch.tensor(
    [
        [0.56282854, 0.58447580, 0.58447580],
        [0.19482528, 0.00000000, -0.19482528],
        [0.04329450, -0.10823626, 0.06494176],
    ]
)


def build_model(device: torch.device) -> torch.nn.Module:
    """EfficientNet-Lite0 with random weights (timm), or a small stand-in without timm."""
    try:
        import timm

        model = timm.create_model("efficientnet_lite0", pretrained=False)
    except Exception as error:  # noqa: BLE001 - any import/construct failure: stand-in
        print(f"timm unavailable ({type(error).__name__}): a small stand-in CNN is timed")
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, 2, 1),
            torch.nn.ReLU6(),
            torch.nn.Conv2d(32, 64, 3, 2, 1),
            torch.nn.ReLU6(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(64, 1000),
        )
    model = model.to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def standardize(x: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(1, x.dim()))
    centred = x - x.mean(dim=dims, keepdim=True)
    return centred / (centred.square().mean(dim=dims, keepdim=True).sqrt() + 1e-5)


def make_step(model, nb_images, nb_crops, size, device, bf16):
    """A closure running one MACO-like step on ``nb_images`` images (state kept inside)."""
    generator = torch.Generator(device=device).manual_seed(0)
    freq = (3, size, size // 2 + 1)
    magnitude = torch.rand(freq, device=device, generator=generator) + 0.1
    phase = torch.randn((nb_images, *freq), device=device, generator=generator)
    phase.requires_grad_(True)
    first_moment = torch.zeros_like(phase)
    second_moment = torch.zeros_like(phase)
    transparency = torch.zeros((nb_images, 3, size, size), device=device)
    color = COLOR.to(device)
    targets = torch.arange(nb_images, device=device).repeat_interleave(nb_crops) % 1000

    def step() -> None:
        standardized = standardize(phase) * torch.pi
        spectrum = torch.polar(magnitude.expand_as(standardized), standardized)
        spatial = torch.fft.irfft2(spectrum, s=(size, size))
        spatial = standardize(spatial)
        images = torch.sigmoid(torch.einsum("nchw,cd->ndhw", spatial, color))
        images.retain_grad()
        # 16 crops per image: random centres and sides, bilinear resize to 224
        count = nb_images * nb_crops
        centres = 0.15 * torch.randn((count, 2), device=device)
        sides = (0.3 + 0.05 * torch.randn((count, 1), device=device)).clamp(0.05, 1.0)
        theta = torch.zeros((count, 2, 3), device=device)
        theta[:, 0, 0] = sides[:, 0]
        theta[:, 1, 1] = sides[:, 0]
        theta[:, :, 2] = centres * 2
        grid = F.affine_grid(theta, (count, 3, 224, 224), align_corners=False)
        source = images.repeat_interleave(nb_crops, dim=0)
        crops = F.grid_sample(source, grid, mode="bilinear", align_corners=False)
        crops = crops + 0.04 * torch.randn_like(crops)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(crops)
        loss = logits.float().gather(1, targets[:, None]).sum() / nb_crops
        loss.backward()
        with torch.no_grad():
            gradient = -phase.grad
            first_moment.mul_(0.9).add_(gradient, alpha=0.1)
            second_moment.mul_(0.999).addcmul_(gradient, gradient, value=0.001)
            phase.sub_(first_moment / (second_moment.sqrt() + 1e-7))
            transparency.add_(images.grad.abs())
            phase.grad = None

    return step


def time_step(step, device, repeats: int) -> float:
    """Median seconds per step (CUDA events on a GPU, a synchronised clock elsewhere)."""
    for _ in range(3):
        step()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            step()
            samples.append(time.perf_counter() - begin)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,4,8,16,32,64", help="images per step")
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--bf16", action="store_true", help="also time a bf16-autocast model")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {args.crops} crops, {args.size}² images")
    model = build_model(device)
    modes = [False, True] if args.bf16 else [False]
    print(f"{'images':>6s} {'crops':>6s} {'precision':>9s} {'ms/step':>9s} {'ms/image':>9s}")
    for bf16 in modes:
        for count in (int(s) for s in args.sizes.split(",")):
            try:
                step = make_step(model, count, args.crops, args.size, device, bf16)
                seconds = time_step(step, device, args.repeats)
            except torch.OutOfMemoryError:
                print(f"{count:6d} out of memory")
                break
            precision = "bf16" if bf16 else "fp32/tf32"
            print(
                f"{count:6d} {count * args.crops:6d} {precision:>9s} {1000 * seconds:9.2f} "
                f"{1000 * seconds / count:9.2f}",
                flush=True,
            )
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
