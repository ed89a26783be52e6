"""RPFNet's training objective (papers/rpfnet.txt, eq. 5-14):

  L_total = L_SS + L_c + lambda2 * L_s
  L_SS    = L_grad + L_reg                                        saliency structure loss (aux decoder M')
  L_grad  = ||Sobel(M') - Sobel(IR)||_2 - lambda1 * ||M' * m(VIS_Y)||_2,  m = 1{|Sobel(VIS_Y)| > mean}
  L_reg   = -||M' * T(IR)||_2,                                          T = 1{IR > mean(IR) + std(IR)}
  L_c     = D_pos / (D_neg + eps)                                 adaptive-weight frequency contrastive loss
  L_s     = (1 - SSIM(F, IR)) + (1 - SSIM(F, VIS_Y))              structural loss

F is the fused luminance (the model's ``aux['fused_y']`` when present, else the Y of the fused RGB).

Choices (the extracted text leaves them open):
  * ||.||_2 is taken per frame as an RMS (the l2 norm divided by sqrt(#pixels)), so the terms do not
    scale with the crop size, then averaged over frames; ||.||_1 of a spectrum is the mean modulus of
    the orthonormal rFFT of the difference (the FFT is linear: FFT(a) - FFT(b) = FFT(a - b));
  * eq. 13 writes SSIM(F, .) as a loss: we minimise 1 - SSIM, the only reading that rewards structure;
  * eq. 12 as printed lists (F*w_bar, VIS_Y*w_bar) as a negative pair although it is also a positive
    pair (eq. 11). By default the negatives are the symmetric set {(F*w, IR*w_bar), (F*w, VIS_Y*w),
    (F*w_bar, IR*w_bar), (F*w_bar, VIS_Y*w)}: each fused region against the wrong modality in the same
    region and against that modality's other region; ``literal_negatives=True`` uses eq. 12 as printed;
  * Sobel gradients in L_grad are the (x, y) derivative pairs (signed), the texture mask uses the
    Sobel magnitude;
  * the residual map of eq. 9 is taken as VIS_Y - IR (``weight_residual='vis_minus_ir'``). Eq. 9's S_en
    is high where exactly one of S_IR and S_M is high; with M = IR - VIS_Y a hot target on a dark
    visible background is salient in both and gets w = 0, so F would be pulled to the visible image
    exactly where the paper says w marks the infrared foreground (measured: w = 0 on such a target,
    w = 1 with the flipped sign). The network's own input keeps M = IR - VIS_Y (a sign a conv absorbs);
    ``weight_residual='ir_minus_vis'`` gives the literal reading.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import check_weight, flatten_clip, frame_luminances, sobel_magnitude, sobel_xy, source_terms, ssim_loss
from .registry import register_loss

_STAT_EPS = 1e-6   # guards the standardisation of a constant image
_NORM_EPS = 1e-12  # keeps the RMS differentiable at exactly 0


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame mean and (population) standard deviation of (N, 1, H, W), shaped (N, 1, 1, 1)."""
    return x.mean((1, 2, 3), keepdim=True), x.std((1, 2, 3), correction=0, keepdim=True)


def rms(x: torch.Tensor) -> torch.Tensor:
    """Size-normalised l2 norm per frame of (N, C, H, W), averaged over frames."""
    return torch.sqrt(x.pow(2).mean((1, 2, 3)) + _NORM_EPS).mean()


def adaptive_weight(ir: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Eq. 9: the binary mask w of (N, 1, H, W) regions where exactly one of IR and `residual` is salient
    (S_en above its mean + std); no gradient flows through it."""
    with torch.no_grad():
        def saliency(x: torch.Tensor) -> torch.Tensor:
            mu, sd = _stats(x)
            return torch.sigmoid((x - mu) / (sd + _STAT_EPS))

        s_ir, s_m = saliency(ir), saliency(residual)
        s_en = (s_ir * (1 - s_m) + s_m * (1 - s_ir)) / 2
        mu, sd = _stats(s_en)
        return (s_en > mu + sd).to(ir.dtype)


def spectral_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||FFT(a) - FFT(b)||_1 as the mean modulus of the orthonormal real FFT of a - b (float32)."""
    with torch.autocast(device_type=a.device.type, enabled=False):
        return torch.fft.rfft2((a - b).float(), norm="ortho").abs().mean()


def frequency_contrastive(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, w: torch.Tensor,
                          eps: float = 1e-9, literal_negatives: bool = False) -> torch.Tensor:
    """Eq. 10-12 on (N, 1, H, W) luminance: 0 exactly when fused == IR*w + VIS*(1-w)."""
    wb = 1 - w
    fw, fwb = fused * w, fused * wb
    d_pos = spectral_l1(fw, ir * w) + spectral_l1(fwb, vis * wb)
    negatives = [(fw, ir * wb), (fw, vis * w), (fwb, ir * w if literal_negatives else ir * wb),
                 (fwb, vis * wb if literal_negatives else vis * w)]
    d_neg = sum(spectral_l1(a, b) for a, b in negatives)
    return d_pos / (d_neg + eps)


def saliency_structure(m_prime: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor,
                       lambda1: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6-7 on (N, 1, H, W): (L_grad, L_reg) for the auxiliary decoder's output M'."""
    gx_m, gy_m = sobel_xy(m_prime)
    gx_ir, gy_ir = sobel_xy(ir)
    with torch.no_grad():
        s_vis = sobel_magnitude(vis)
        texture = (s_vis > s_vis.mean((1, 2, 3), keepdim=True)).to(ir.dtype)      # m(VIS_Y)
        mu, sd = _stats(ir)
        hot = (ir > mu + sd).to(ir.dtype)                                         # T(IR)
    align = rms(torch.cat((gx_m - gx_ir, gy_m - gy_ir), 1))
    l_grad = align - lambda1 * rms(m_prime * texture)
    l_reg = -rms(m_prime * hot)
    return l_grad, l_reg


@register_loss("rpfnet")
class RPFNetLoss(nn.Module):
    """L_SS + L_c + lambda2 * L_s; defaults are the paper's (lambda1 = 0.3, lambda2 = 5, eps = 1e-9).

    L_SS needs the auxiliary decoder's output (``aux['residual']`` from ``RPFNet.forward_train``); called
    without it (e.g. a validation loss from the plain forward) the loss is the fusion loss L_F alone and
    the ``ss*`` terms are absent from the returned terms.
    """

    def __init__(self, lambda1: float = 0.3, lambda2: float = 5.0, ss_weight: float = 1.0, eps: float = 1e-9,
                 literal_negatives: bool = False, weight_residual: str = "vis_minus_ir",
                 w_detail: float = 0.0,
                 w_edge: float = 0.0) -> None:
        super().__init__()
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.ss_weight = ss_weight  # choice: 1 as in eq. 14; a knob for short trainings
        self.eps = eps
        self.literal_negatives = literal_negatives
        if weight_residual not in ("vis_minus_ir", "ir_minus_vis"):
            raise ValueError(f"weight_residual must be 'vis_minus_ir' or 'ir_minus_vis', got {weight_residual!r}")
        self.weight_residual = weight_residual
        self.w_detail = check_weight("w_detail", w_detail)
        self.w_edge = check_weight("w_edge", w_edge)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor,
                aux: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f, ir_y, vis_y = frame_luminances(ir, vis, fused, aux)
        w = adaptive_weight(ir_y, vis_y - ir_y if self.weight_residual == "vis_minus_ir" else ir_y - vis_y)
        l_c = frequency_contrastive(f, ir_y, vis_y, w, self.eps, self.literal_negatives)
        l_s = ssim_loss(f, ir_y) + ssim_loss(f, vis_y)
        total = l_c + self.lambda2 * l_s
        terms = {"contrast": l_c, "ssim": l_s}
        extra, extra_terms = source_terms(f, ir_y, vis_y, self.w_detail, self.w_edge)
        total = total + extra
        terms.update(extra_terms)
        if "residual" in aux:
            l_grad, l_reg = saliency_structure(flatten_clip(aux["residual"]).float(), ir_y, vis_y, self.lambda1)
            l_ss = l_grad + l_reg
            total = total + self.ss_weight * l_ss
            terms.update(ss=l_ss, ss_grad=l_grad, ss_reg=l_reg)
        return total, {k: v.detach() for k, v in terms.items()}
