"""Gaussian diffusion shared by DiffRec, L-DiffRec and DreamRec: schedules, forward noising, posterior,
importance sampling of time steps, and respacing for reduced-step inference.

All models here predict x0 (the clean input) rather than the noise, as DiffRec's and DreamRec's reference
code do. Schedules:

- ``linear-var`` (DiffRec's default): 1 - alpha_bar_t grows linearly from ``scale * min`` to ``scale * max``;
- ``linear``: beta_t linear in [scale * min, scale * max];
- ``exp`` (DreamRec's default): beta_t = 1 - exp(-b_min / T - x_t (b_max - b_min) / (2 T^2)), x_t in [1, 2T+1];
- ``cosine``: Nichol & Dhariwal's alpha_bar(t) = cos^2((t/T + 0.008) / 1.008 * pi / 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recgen.config import check
from recgen.errors import ConfigError

SCHEDULES = ("linear-var", "linear", "exp", "cosine")


@dataclass(frozen=True, kw_only=True)
class DiffusionConfig:
    """The diffusion process's fields every diffusion recommender shares (a model may change the defaults)."""

    steps: int = 5  # diffusion steps T
    noise_schedule: str = "linear-var"  # one of SCHEDULES
    inference_steps: int = 0  # reverse steps run at inference (0 = all ``steps``)

    def validate_diffusion(self, *, chosen_on_valid: bool = False) -> None:
        """Check the shared fields (``chosen_on_valid``: ``inference_steps = -1`` lets validation choose)."""
        check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        check(
            self.noise_schedule in SCHEDULES,
            f"noise_schedule must be one of {list(SCHEDULES)}, got {self.noise_schedule!r}",
        )
        low, note = (-1, "0 = all, -1 = chosen on validation") if chosen_on_valid else (0, "0 = all")
        check(
            low <= self.inference_steps <= self.steps,
            f"inference_steps must be in [{low}, steps={self.steps}] ({note}), got {self.inference_steps}",
        )


@dataclass(frozen=True, kw_only=True)
class VectorDiffusionConfig(DiffusionConfig):
    """Fields of diffusion over a user's interaction vector (DiffRec and L-DiffRec): the noise range, the
    denoiser MLP and DiffRec's reweighting."""

    noise_scale: float = 0.01  # scale s of the noise range
    noise_min: float = 0.001  # lower noise bound (before scaling)
    noise_max: float = 0.01  # upper noise bound (before scaling)
    sampling_noise_steps: int = 0  # T': noise steps added to the user vector at inference
    reweight: bool = True  # SNR(t-1) - SNR(t) weights and importance sampling of t
    hidden_dims: str = "1000"  # denoiser hidden widths, comma-separated (DiffRec's [1000])
    time_emb_dim: int = 10  # step embedding size
    dropout: float = 0.5  # dropout on the input of the network

    def validate_diffusion(self, *, chosen_on_valid: bool = False) -> None:
        super().validate_diffusion(chosen_on_valid=chosen_on_valid)
        check(self.noise_scale > 0, f"noise_scale must be > 0, got {self.noise_scale}")
        check(
            0 < self.noise_min <= self.noise_max < 1,
            f"need 0 < noise_min <= noise_max < 1, got {self.noise_min} and {self.noise_max}",
        )
        check(
            0 <= self.sampling_noise_steps <= self.steps,
            f"sampling_noise_steps must be in [0, steps={self.steps}], got {self.sampling_noise_steps}",
        )
        check(self.time_emb_dim >= 1, f"time_emb_dim must be >= 1, got {self.time_emb_dim}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        parse_dims(self.hidden_dims)


def parse_dims(text: str) -> list[int]:
    """``"1000"`` or ``"600,200"`` -> the denoiser's hidden widths."""
    try:
        dims = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        dims = []
    check(bool(dims) and all(d >= 1 for d in dims), f"hidden_dims must be comma-separated integers >= 1, got {text!r}")
    return dims


def make_betas(
    schedule: str, steps: int, *, scale: float = 1.0, beta_min: float = 1e-4, beta_max: float = 0.02
) -> np.ndarray:
    """Betas (float64, length ``steps``) of a named schedule."""
    if steps < 1:
        raise ConfigError(f"diffusion steps must be >= 1, got {steps}")
    if schedule in ("linear", "linear-var"):
        lo, hi = scale * beta_min, scale * beta_max
        if not 0 < lo <= hi < 1:
            raise ConfigError(
                f"noise range must satisfy 0 < scale*min <= scale*max < 1, got {lo:g} and {hi:g} "
                f"(noise_scale={scale}, noise_min={beta_min}, noise_max={beta_max})"
            )
        grid = np.linspace(lo, hi, steps, dtype=np.float64)
        if schedule == "linear":
            return grid
        alpha_bar = 1.0 - grid  # 1 - alpha_bar_t is the linear "variance"
        betas = np.empty(steps)
        betas[0] = 1.0 - alpha_bar[0]
        betas[1:] = np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], 0.999)
        return betas
    if schedule == "exp":
        x = np.linspace(1, 2 * steps + 1, steps, dtype=np.float64)
        return 1.0 - np.exp(-beta_min / steps - x * 0.5 * (beta_max - beta_min) / (steps * steps))
    if schedule == "cosine":
        f = lambda t: math.cos((t / steps + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        return np.array([min(1 - f(i + 1) / f(i), 0.999) for i in range(steps)], dtype=np.float64)
    raise ConfigError(f"unknown noise schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")


def _extract(v: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    out = v.to(like.dtype)[t]
    return out.view(-1, *([1] * (like.ndim - 1)))


class GaussianDiffusion(nn.Module):
    """Forward process q(x_t | x0), posterior q(x_{t-1} | x_t, x0), and DiffRec's importance sampling.

    The schedule tensors are buffers (float64), so they travel with the model's state; the importance-sampling
    history (``lt_history``, ``lt_count``) is a buffer too, so a resumed run samples steps as the original would.
    """

    def __init__(self, betas: np.ndarray, history_per_step: int = 10) -> None:
        super().__init__()
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not np.all((betas > 0) & (betas < 1)):
            raise ConfigError("betas must be a 1-d array with every value in (0, 1)")
        self.steps = len(betas)
        alphas = 1.0 - betas
        ab = np.cumprod(alphas)
        ab_prev = np.append(1.0, ab[:-1])
        post_var = betas * (1.0 - ab_prev) / (1.0 - ab)
        buffers = {
            "betas": betas,
            "alphas_cumprod": ab,
            "alphas_cumprod_prev": ab_prev,
            "sqrt_ab": np.sqrt(ab),
            "sqrt_one_minus_ab": np.sqrt(1.0 - ab),
            "posterior_variance": post_var,
            "posterior_coef_x0": betas * np.sqrt(ab_prev) / (1.0 - ab),
            "posterior_coef_xt": (1.0 - ab_prev) * np.sqrt(alphas) / (1.0 - ab),
        }
        for name, value in buffers.items():
            self.register_buffer(name, torch.from_numpy(value.copy()), persistent=False)
        self.history_per_step = history_per_step
        self.register_buffer("lt_history", torch.zeros(self.steps, history_per_step, dtype=torch.float64))
        self.register_buffer("lt_count", torch.zeros(self.steps, dtype=torch.long))

    # ---------------------------------------------------------------------------------- forward
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return _extract(self.sqrt_ab, t, x0) * x0 + _extract(self.sqrt_one_minus_ab, t, x0) * noise

    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _extract(self.posterior_coef_x0, t, xt) * x0 + _extract(self.posterior_coef_xt, t, xt) * xt

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod[t]
        return ab / (1.0 - ab)

    def x0_loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """DiffRec's reweighting for x0 prediction: SNR(t-1) - SNR(t), and 1 at t = 0."""
        w = self.snr((t - 1).clamp(min=0)) - self.snr(t)
        return torch.where(t == 0, torch.ones_like(w), w)

    # --------------------------------------------------------------------------- step sampling
    def sample_steps(
        self, n: int, gen: torch.Generator, *, importance: bool, uniform_prob: float = 1e-3
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Time steps for a batch and their importance weights ``pt * T`` (1 for uniform sampling).

        Importance sampling (DiffRec, after Nichol & Dhariwal) starts once every step has
        ``history_per_step`` recorded losses: p_t proportional to sqrt(E[L_t^2]), mixed with a little uniform.
        """
        if importance and bool((self.lt_count == self.history_per_step).all()):
            lt = torch.sqrt((self.lt_history**2).mean(-1))
            pt = lt / lt.sum()
            pt = pt * (1.0 - uniform_prob) + uniform_prob / self.steps
            t = torch.multinomial(pt.float(), n, replacement=True, generator=gen)
            return t, pt[t] * self.steps
        t = torch.randint(0, self.steps, (n,), generator=gen)
        return t, torch.ones(n, dtype=torch.float64)

    @torch.no_grad()
    def record_losses(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Keep the last ``history_per_step`` losses of each step (for importance sampling)."""
        for step, loss in zip(t.tolist(), losses.detach().double().tolist(), strict=True):
            c = int(self.lt_count[step])
            if c == self.history_per_step:
                self.lt_history[step, :-1] = self.lt_history[step, 1:].clone()
                self.lt_history[step, -1] = loss
            else:
                self.lt_history[step, c] = loss
                self.lt_count[step] = c + 1

    # ------------------------------------------------------------------------------ respacing
    def respaced(self, n_steps: int) -> tuple[GaussianDiffusion, torch.Tensor]:
        """A diffusion over ``n_steps`` evenly spaced steps of this one (improved-DDPM respacing), and the map
        new step -> original step (what the denoiser is conditioned on)."""
        if not 1 <= n_steps <= self.steps:
            raise ConfigError(f"inference steps must be in [1, {self.steps}], got {n_steps}")
        if n_steps == self.steps:
            return self, torch.arange(self.steps)
        keep = np.unique(np.round(np.linspace(0, self.steps - 1, n_steps)).astype(np.int64))
        ab = self.alphas_cumprod.numpy()[keep]
        betas = 1.0 - ab / np.append(1.0, ab[:-1])
        return GaussianDiffusion(np.clip(betas, 1e-12, 0.999)), torch.from_numpy(keep)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embeddings (B, dim) of (possibly fractional) time steps, as in DDPM/DiffRec."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64, device=t.device) / half)
    args = t.double()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def query_generators(histories, seed: int) -> list[torch.Generator]:
    """One generator per query, seeded from the model seed and the query's history, so that stochastic inference
    gives the same result for a query whatever batch it is scored in (and after save/load)."""
    import zlib

    gens = []
    for h in histories:
        key = zlib.crc32(np.ascontiguousarray(np.asarray(h, dtype=np.int64)).tobytes())
        gens.append(torch.Generator().manual_seed((seed * 1_000_003 + key) % (2**63)))
    return gens


def query_noise(gens: list[torch.Generator], shape: tuple[int, ...], dtype=torch.float64) -> torch.Tensor:
    """(B, *shape) standard normal noise, row b drawn from ``gens[b]``."""
    if not gens:
        return torch.zeros((0, *shape), dtype=dtype)
    return torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in gens]).to(dtype)
