"""Fused / CUDA-friendly ops equal their straightforward references (fp32, 1e-5, gradients too),
the model compiles with fullgraph=True, and gradient checkpointing leaves gradients unchanged.

References are written here plainly (one-hot products, naive softmax attention) or taken from
w2v2.bench.reference.contrastive_logits_reference; inputs are random, seeded.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import einsum, rearrange

from w2v2.bench.reference import contrastive_logits_reference
from w2v2.compile import compile_model
from w2v2.config import apply_overrides, preset
from w2v2.context import SelfAttention
from w2v2.losses import contrastive_logits
from w2v2.masking import compute_mask, sample_negatives
from w2v2.model import build_model
from w2v2.quantizer import lookup, straight_through_lookup

TOL = 1e-5


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# --- contrastive logits ---------------------------------------------------------------------------


def _codebook_targets(b: int, t: int, g: int, v: int, e: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """codes (b, t, g) over few codewords (many repeats) and q (b, t, g*e) = their codebook lookup,
    so that equal codes <=> equal q, as in the model (where q is a deterministic function of codes)."""
    codes = torch.randint(0, v, (b, t, g), generator=gen)
    codebook = torch.randn(g, v, e, generator=gen)
    q = rearrange(lookup(codebook, rearrange(codes, "b t g -> (b t) g")), "(b t) g e -> b t (g e)", b=b)
    return codes, q


def test_contrastive_logits_equal_the_gathering_reference_with_gradients() -> None:
    gen = torch.Generator().manual_seed(0)
    b, t, g, v, e, k = 3, 20, 2, 3, 8, 12  # 9 code combinations over 20 frames: many equal distractors
    codes, q0 = _codebook_targets(b, t, g, v, e, gen)
    c0 = torch.randn(b, t, g * e, generator=gen)
    negatives = torch.randint(0, t, (b, t, k), generator=gen)
    weights = torch.randn(b, t, 1 + k, generator=gen)
    results = []
    for fn in (lambda c, q: contrastive_logits(c, q, negatives, 0.1, codes),
               lambda c, q: contrastive_logits_reference(c, q, negatives, 0.1)):
        c, q = c0.clone().requires_grad_(), q0.clone().requires_grad_()
        logits = fn(c, q)
        finite = torch.isfinite(logits)
        (logits.masked_fill(~finite, 0.0) * weights).sum().backward()
        results.append((logits, finite, c.grad, q.grad))
    (fused, fused_ok, fused_gc, fused_gq), (ref, ref_ok, ref_gc, ref_gq) = results
    assert torch.equal(fused_ok, ref_ok)
    excluded = (~fused_ok).sum().item()
    assert 0 < excluded < fused_ok.numel() // 2, "the test should exercise excluded distractors"
    assert torch.equal(fused == float("-inf"), ~fused_ok)
    assert max_diff(fused[fused_ok], ref[ref_ok]) < TOL
    assert max_diff(fused_gc, ref_gc) < TOL
    assert max_diff(fused_gq, ref_gq) < TOL


# --- quantizer lookup -------------------------------------------------------------------------------


def test_straight_through_lookup_equals_the_one_hot_product_with_gradients() -> None:
    gen = torch.Generator().manual_seed(1)
    n, g, v, e = 50, 2, 16, 8
    logits0 = torch.randn(n, g, v, generator=gen)
    codebook0 = torch.rand(g, v, e, generator=gen)
    grad_q = torch.randn(n, g, e, generator=gen)
    results = []
    for fused in (True, False):
        logits, codebook = logits0.clone().requires_grad_(), codebook0.clone().requires_grad_()
        p = torch.softmax(logits / 0.7, dim=-1)
        codes = p.argmax(-1)
        if fused:
            q = straight_through_lookup(p, codes, codebook)
        else:
            hard = F.one_hot(codes, v).to(p.dtype) - p.detach() + p
            q = einsum(hard, codebook, "n g v, g v e -> n g e")
        (q * grad_q).sum().backward()
        results.append((q, logits.grad, codebook.grad))
    (q, g_logits, g_codebook), (q_ref, g_logits_ref, g_codebook_ref) = results
    assert max_diff(q, q_ref) < TOL
    assert g_logits.abs().max() > 0 and g_codebook.abs().max() > 0
    assert max_diff(g_logits, g_logits_ref) < TOL
    assert max_diff(g_codebook, g_codebook_ref) < TOL


# --- attention --------------------------------------------------------------------------------------


def naive_attention(attn: SelfAttention, x: torch.Tensor, frame_padding_mask: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(e) + mask) V, then the output projection. x (b, t, d)."""
    q, k, v = rearrange(attn.qkv(x), "b t (n h e) -> n b h t e", n=3, h=attn.heads)
    scores = einsum(q, k, "b h t e, b h s e -> b h t s") / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(rearrange(frame_padding_mask, "b s -> b 1 1 s"), float("-inf"))
    y = einsum(torch.softmax(scores, dim=-1), v, "b h t s, b h s e -> b h t e")
    return attn.out(rearrange(y, "b h t e -> b t (h e)"))


def test_sdpa_attention_with_padding_equals_the_naive_softmax() -> None:
    torch.manual_seed(2)
    b, t, d, h = 3, 17, 32, 4
    attn = SelfAttention(d, h, dropout=0.0).train()
    x0 = torch.randn(b, t, d)
    frame_padding_mask = torch.arange(t)[None, :] >= torch.tensor([17, 9, 3])[:, None]
    grad_y = torch.randn(b, t, d)
    results = []
    for fn in (attn, lambda x, m: naive_attention(attn, x, m)):
        attn.zero_grad()
        x = x0.clone().requires_grad_()
        y = fn(x, frame_padding_mask)
        (y * grad_y).sum().backward()
        results.append((y, x.grad, attn.qkv.weight.grad.clone(), attn.out.weight.grad.clone()))
    for i, (a, r) in enumerate(zip(*results, strict=True)):
        assert max_diff(a, r) < TOL, f"output/gradient {i}"


# --- torch.compile and gradient checkpointing ---------------------------------------------------------

# The tiny preset, thinner, 3 conv layers (same 320-sample hop) and one Transformer layer, so that inductor
# compiles each test in ~25 s on 2 cores.
SMALL = apply_overrides(preset("tiny"), ["encoder.conv_dim=[16,16,16]", "encoder.conv_kernel=[10,4,4]",
                                         "encoder.conv_stride=[5,4,4]", "context.dim=32", "context.layers=1",
                                         "context.heads=2", "context.ffn_dim=64", "context.pos_conv_groups=2",
                                         "quantizer.codewords=8", "quantizer.codevector_dim=16",
                                         "objective.proj_dim=16", "head.projector_dim=16", "context.dropout=0.0",
                                         "context.attention_dropout=0.0", "context.input_dropout=0.0"])


def _batch(model: torch.nn.Module, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """wave (2, 4000) with the second item padded after 2500 samples, mask and negatives."""
    gen = torch.Generator().manual_seed(seed)
    wave = torch.randn(2, 4000, generator=gen)
    padding_mask = torch.arange(4000)[None, :] >= torch.tensor([4000, 2500])[:, None]
    backbone = model.backbone
    fpm = backbone.frame_padding_mask(wave, padding_mask)
    mask = compute_mask(tuple(fpm.shape), 0.5, 2, 2, gen, fpm)
    negatives = sample_negatives(mask, model.cfg.objective.num_negatives, gen)
    return wave, padding_mask, mask, negatives


def test_classifier_inference_compiles_without_graph_breaks() -> None:
    torch.manual_seed(0)
    model = build_model(SMALL, "classifier").eval()
    wave, padding_mask, _, _ = _batch(model)
    compiled = compile_model(model)  # fullgraph=True: any graph break raises
    with torch.no_grad():
        expected = model(wave, padding_mask).logits
        got = compiled(wave, padding_mask).logits
    assert max_diff(got, expected) < 1e-4


def test_pretraining_step_compiles_without_graph_breaks() -> None:
    torch.manual_seed(0)
    model = build_model(SMALL, "pretrain").train()
    wave, padding_mask, mask, negatives = _batch(model)
    compiled = compile_model(model)
    grads = []
    for m in (model, compiled):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(123)  # same Gumbel noise (inductor falls back to eager RNG, see compile_model)
        out = m(wave, padding_mask, mask=mask, negative_indices=negatives)
        (out.loss / out.num_masked).backward()
        grads.append((out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss, eager), (loss_c, comp) = grads
    assert abs(loss.item() - loss_c.item()) <= 1e-4 * abs(loss.item())
    worst = max(max_diff(eager[n], comp[n]) / (eager[n].abs().max().item() + 1e-6) for n in eager)
    assert worst < 1e-3


@pytest.mark.parametrize("kind", ["pretrain", "classifier"])
def test_gradient_checkpointing_leaves_gradients_unchanged(kind: str) -> None:
    grads = []
    for ckpt in (False, True):
        cfg = apply_overrides(SMALL, [f"gradient_checkpointing={str(ckpt).lower()}", "context.dropout=0.1"])
        torch.manual_seed(0)
        model = build_model(cfg, kind).train()
        wave, padding_mask, mask, negatives = _batch(model)
        torch.manual_seed(1)  # dropout/Gumbel noise; checkpoint() replays the RNG state when recomputing
        if kind == "pretrain":
            loss = model(wave, padding_mask, mask=mask, negative_indices=negatives).loss
        else:
            loss = model(wave, padding_mask, mask=mask).logits.square().sum()
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    plain, checkpointed = grads
    assert plain.keys() == checkpointed.keys()
    for n in plain:
        assert torch.equal(plain[n], checkpointed[n]), n


def test_the_spectral_positional_conv_compiles_without_graph_breaks() -> None:
    """`small`'s positional conv (a product of spectra, w2v2/context.py) in one graph, forward and backward."""
    cfg = apply_overrides(SMALL, ["context.pos_conv_kernel=32"])
    torch.manual_seed(0)
    model = build_model(cfg, "classifier").train()
    assert model.backbone.context.pos_conv.spectral
    wave, padding_mask, mask, _ = _batch(model)
    compiled = compile_model(model)
    grads = []
    for m in (model, compiled):
        model.zero_grad(set_to_none=True)
        logits = m(wave, padding_mask, mask=mask).logits
        logits.square().sum().backward()
        grads.append((logits.detach(), model.backbone.context.pos_conv.weight_v.grad.clone()))
    (eager, g_eager), (comp, g_comp) = grads
    assert max_diff(comp, eager) < 1e-4
    assert max_diff(g_comp, g_eager) <= 1e-3 * g_eager.abs().max().item()
