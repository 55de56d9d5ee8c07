"""Conformance of SAM 2.1 hiera-t (image predictor and video tracking) against the upstream goldens (pseudo weights),
and where prompts given in photo pixels land on the model's 1024 x 1024 input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from conformance_checks import assert_close

from mattekit.nets import build
from mattekit.nets.sam2.common import sine_pe_2d
from mattekit.nets.sam2.heads import PromptEncoder
from mattekit.nets.sam2.predictor import (
    SAM2ImagePredictor,
    SAM2VideoTracker,
    box_and_points,
    image_input,
    video_frame_input,
)

IMAGE = "sam2_1_hiera_t_image"
VIDEO = "sam2_1_hiera_t_video"


def _model(g):
    model = build("sam2:SAM2", variant="hiera_t")
    model.load_state_dict(g.pseudo_state_dict(model), strict=True)
    assert sum(p.numel() for p in model.parameters()) == g.manifest["n_params"]
    return model.eval()


@pytest.fixture(scope="module")
def model(golden):
    """Hiera-T with the goldens' stand-in weights, built once for the module: the image and the video golden name
    the same weights (checked here), and the predictors only read them."""
    image, video = golden(IMAGE), golden(VIDEO)
    assert image.manifest["state_dict"] == video.manifest["state_dict"]
    assert image.manifest["n_params"] == video.manifest["n_params"]
    return _model(image)


@pytest.fixture(scope="module")
def image_predictor(golden, model):
    """The golden's image set once on a hiera-t predictor with stand-in weights (about 20 s on 2 cores)."""
    g = golden(IMAGE)
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(g.arrays["image"])
    return g, predictor


def _pseudo_part(g, prefixes) -> dict:
    """Stand-in weights for the manifest keys that start with one of ``prefixes`` only (fast: no trunk)."""
    spec = importlib.util.spec_from_file_location("pseudo_weights", g.folder.parent / "pseudo_weights.py")
    pseudo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pseudo)
    return {
        key: pseudo.pseudo_tensor(key, shape, dtype)
        for key, shape, dtype, _ in g.manifest["state_dict"]
        if key.startswith(tuple(prefixes))
    }


def _prompt_encoder(g):
    """The prompt encoder alone, with its stand-in weights."""
    prefix = "sam_prompt_encoder."
    encoder = PromptEncoder()
    encoder.load_state_dict({k[len(prefix) :]: v for k, v in _pseudo_part(g, [prefix]).items()}, strict=True)
    return encoder.eval()


def _prompts(g):
    p = g.manifest["input"]["prompts"]
    return {"box": dict(box=p["box_xyxy"]), "pts": dict(point_coords=p["points_xy"], point_labels=p["point_labels"])}


def test_image_input_recipe(golden):
    g = golden(IMAGE)
    x = image_input(g.arrays["image"])
    assert_close(x[:, :, ::16, ::16], g.arrays["aux_model_input_sub16"], 1e-6, "model input")


@pytest.mark.slow
def test_image_features(image_predictor):
    g, p = image_predictor
    f = p.features
    errors = {
        "aux_image_embed_c0_8": assert_close(f["embed"][:, :8], g.arrays["aux_image_embed_c0_8"], 1e-4, "embed"),
        "aux_high_res_feat0_c0_1": assert_close(
            f["high_res"][0][:, :1], g.arrays["aux_high_res_feat0_c0_1"], 1e-4, "s0"
        ),
        "aux_high_res_feat1_c0_2": assert_close(
            f["high_res"][1][:, :2], g.arrays["aux_high_res_feat1_c0_2"], 1e-4, "s1"
        ),
    }
    print({k: f"{v:.2e}" for k, v in errors.items()})


@pytest.mark.slow
@pytest.mark.parametrize("case", ["box", "pts"])
def test_image_prompts(image_predictor, case):
    g, p = image_predictor
    a = g.arrays
    kwargs = _prompts(g)[case]
    raw = p.decode(**kwargs)
    errors = {
        "sparse": assert_close(raw["sparse"], a[f"{case}_sparse_embeddings"], 1e-5, "sparse embeddings"),
        "decoder_masks": assert_close(raw["masks"], a[f"{case}_decoder_masks"], 1e-4, "decoder masks"),
        "decoder_iou": assert_close(raw["iou"], a[f"{case}_decoder_iou"], 1e-5, "decoder iou"),
        "object_score": assert_close(raw["object_score"], a[f"{case}_object_score_logits"], 1e-5, "object score"),
    }
    for multi, name in ((False, "single"), (True, "multi")):
        masks, iou, low = p.predict(multimask_output=multi, return_logits=True, **kwargs)
        errors[f"{name}_masks"] = assert_close(
            torch.from_numpy(masks), a[f"{case}_{name}_masks"], 1e-4, f"{name} masks"
        )
        errors[f"{name}_iou"] = assert_close(torch.from_numpy(iou), a[f"{case}_{name}_iou"], 1e-5, f"{name} iou")
        expected_low = a[f"{case}_decoder_masks"][0, a[f"{case}_{name}_low_res_index"]].clip(-32, 32)
        errors[f"{name}_low_res"] = assert_close(torch.from_numpy(low), expected_low, 1e-4, f"{name} low-res")
        if multi:
            binary, _, _ = p.predict(multimask_output=multi, **kwargs)
            assert binary.dtype == np.bool_ and np.array_equal(binary, masks > 0.0)
    print(case, {k: f"{v:.2e}" for k, v in errors.items()})


@pytest.mark.parametrize("hw", [(120, 160), (480, 640), (768, 1024), (1000, 333), (37, 2048)])
def test_box_lands_where_drawn(golden, hw):
    """A box drawn at the same relative place on photos of any size lands on the same model pixels (x / W * 1024,
    y / H * 1024, before the prompt encoder's +0.5), and gives the golden's sparse prompt embedding."""
    g = golden(IMAGE)
    h, w = hw
    x0, y0, x1, y1 = g.manifest["input"]["prompts"]["box_xyxy"]  # drawn on the 120 x 160 photo
    box = [x0 * w / 160, y0 * h / 120, x1 * w / 160, y1 * h / 120]
    coords, labels = box_and_points(hw, box=box)
    expected = torch.tensor([[[x0 / 160 * 1024, y0 / 120 * 1024], [x1 / 160 * 1024, y1 / 120 * 1024]]])
    assert_close(coords, expected, 1e-3, f"box corners at {hw}")
    assert labels.tolist() == [[2, 3]]
    whole, _ = box_and_points(hw, box=[0, 0, w, h])
    assert whole.tolist() == [[[0.0, 0.0], [1024.0, 1024.0]]]
    encoder = _prompt_encoder(g)
    with torch.no_grad():
        sparse, _ = encoder(coords, labels)
    assert_close(sparse, g.arrays["box_sparse_embeddings"], 1e-5, f"box embedding at {hw}")
    clicks, click_labels = box_and_points(hw, box=box, point_coords=[[w / 2, h / 2]], point_labels=[1])
    assert click_labels.tolist() == [[2, 3, 1]]  # the box's corners come before the clicks
    assert_close(clicks[0, 2], torch.tensor([512.0, 512.0]), 1e-3, "centre click")


def test_video_frame_input_recipe(golden):
    g = golden(VIDEO)
    x = video_frame_input(g.arrays["frames_u8"][0])
    assert_close(x[:, :, ::16, ::16], g.arrays["aux_f0_model_input_sub16"], 1e-6, "frame-0 model input")


def test_memory_bank_order_and_temporal_encodings(golden):
    """Fast, no encoder: which memories frames 1..3 attend to, in which order, with which temporal encodings
    (``maskmem_tpos_enc`` index per frame, signed pointer distances / (min(num_frames, 16) - 1))."""
    g = golden(VIDEO)
    a = g.arrays
    model = build("sam2:SAM2", variant="hiera_t").eval()
    model.load_state_dict(_pseudo_part(g, ["maskmem_tpos_enc", "obj_ptr_tpos_proj."]), strict=False)
    tracker = SAM2VideoTracker(model, a["frames_u8"].shape[1:3], num_frames=len(a["frames_u8"]))
    pe = sine_pe_2d(64, 64, 64)

    def stored():
        return {
            "maskmem_features": torch.zeros(1, 64, 64, 64, dtype=torch.bfloat16),
            "maskmem_pos_enc": pe,
            "obj_ptr": torch.zeros(1, 256),
        }

    tracker.cond[0] = stored()
    with torch.no_grad():
        for t in (1, 2, 3):
            memory, memory_pos, n = tracker._memory(t)
            assert memory.shape == (1, t * 64 * 64 + 4 * t, 64) and n == 4 * t
            pos = memory_pos.transpose(0, 1)
            assert_close(pos[-n:], a[f"aux_f{t}_memory_pos_ptr"], 1e-5, f"f{t} pointer PE")
            assert_close(pos[: -n : 64 * 64], a[f"aux_f{t}_memory_pos_frame_tok0"], 1e-5, f"f{t} memory PE")
            tracker.non_cond[t] = stored()

    # a long video (upstream's rule, beyond the golden): the prompted frame, the 6 previous memories, and the
    # pointers of the prompted frame and of the 15 previous frames, with distances / 15
    long = SAM2VideoTracker(model, a["frames_u8"].shape[1:3], num_frames=100)
    long.cond[0] = stored()
    long.non_cond.update({t: stored() for t in range(1, 40)})
    with torch.no_grad():
        memory, memory_pos, n = long._memory(40)
        expected_ptr_pe = model.pointer_pe(torch.tensor([40] + list(range(1, 16))), 15).repeat_interleave(4, dim=0)
        expected_frame_pe = pe.flatten(2).transpose(1, 2)[0, 0] + model.maskmem_tpos_enc[[6, 5, 4, 3, 2, 1, 0], 0, 0]
    assert memory.shape == (1, 7 * 64 * 64 + 16 * 4, 64) and n == 16 * 4
    assert_close(memory_pos[0, -n:], expected_ptr_pe, 1e-6, "long-video pointer PE")
    assert_close(memory_pos[0, : -n : 64 * 64], expected_frame_pe, 1e-6, "long-video memory PE")


def _bf16_close(actual: torch.Tensor, expected: np.ndarray, what: str) -> float:
    """Memory features are stored as bfloat16: float noise may flip a value to the neighbouring bf16 step
    (relative 2^-7) in a few places; anything more is a bug."""
    actual = actual.float().numpy()
    diff = np.abs(actual - expected)
    assert (diff <= np.abs(expected) * 2.0**-7 + 1e-4).all(), f"{what}: off by more than one bfloat16 step"
    assert (diff > 0).mean() < 0.01 and diff.mean() < 1e-5, f"{what}: too many bfloat16 steps differ"
    return float(diff.max())


@pytest.mark.slow  # about 2.5 minutes on a busy 2-core machine (four 1024 x 1024 frames through the encoder)
def test_video_box_propagation(golden, model):
    """Box on frame 0, then frames 1..3 tracked from the memory bank: masks, pointers, scores and memory taps."""
    g = golden(VIDEO)
    a = g.arrays
    frames = a["frames_u8"]
    tracker = SAM2VideoTracker(model, frames.shape[1:3], num_frames=len(frames))
    errors = {}
    for t, frame in enumerate(frames):
        if t == 0:
            logits = tracker.prompt(frame, box=a["box_xyxy"])
            errors["f0_decoder_masks"] = assert_close(
                tracker.cond[0]["decoder_masks"], a["f0_decoder_masks"], 1e-4, "f0 decoder masks"
            )
        else:
            logits = tracker.track(frame)
            last = tracker.last
            n = last["num_ptr_tokens"]
            pos = last["memory_pos"].transpose(0, 1)  # upstream's (tokens, B, C)
            assert n == 4 * t  # one pointer per earlier frame, 4 tokens of 64 each
            errors[f"aux_f{t}_memory_pos_ptr"] = assert_close(pos[-n:], a[f"aux_f{t}_memory_pos_ptr"], 1e-5, "ptr PE")
            errors[f"aux_f{t}_memory_pos_frame_tok0"] = assert_close(
                pos[: pos.shape[0] - n : 64 * 64], a[f"aux_f{t}_memory_pos_frame_tok0"], 1e-5, "memory PE"
            )
            errors[f"aux_f{t}_memattn_out_c0_8"] = assert_close(
                last["conditioned"].flatten(2).permute(2, 0, 1)[..., :8],
                a[f"aux_f{t}_memattn_out_c0_8"],
                1e-3,
                f"f{t} memory attention",
            )
        out = tracker.outputs[t]
        errors[f"f{t}_video_res_masks"] = assert_close(
            torch.from_numpy(logits)[None, None], a[f"f{t}_video_res_masks"], 5e-4, f"f{t} video masks"
        )
        errors[f"f{t}_pred_masks"] = assert_close(out["pred_masks"], a[f"f{t}_pred_masks"], 5e-4, f"f{t} low-res masks")
        errors[f"f{t}_obj_ptr"] = assert_close(out["obj_ptr"], a[f"f{t}_obj_ptr"], 5e-5, f"f{t} object pointer")
        errors[f"f{t}_object_score_logits"] = assert_close(
            out["object_score"], a[f"f{t}_object_score_logits"], 1e-5, f"f{t} object score"
        )
        errors[f"f{t}_decoder_iou"] = assert_close(out["decoder_iou"], a[f"f{t}_decoder_iou"], 1e-5, f"f{t} iou")
        errors[f"aux_f{t}_maskmem_features_c0_8"] = _bf16_close(
            out["maskmem_features"][:, :8], a[f"aux_f{t}_maskmem_features_c0_8"], f"f{t} memory"
        )
    print({k: f"{v:.2e}" for k, v in errors.items()})


def _gating_model(g):
    model = build("sam2:SAM2", variant="hiera_t").eval()
    model.load_state_dict(_pseudo_part(g, ["no_obj", "obj_ptr_proj.", "memory_encoder."]), strict=False)
    return model


def test_no_object_pointer(golden):
    """Where the object score is <= 0 the pointer becomes ``no_obj_ptr`` (the golden's frames all hold the object,
    so this path is pinned here)."""
    model = _gating_model(golden(VIDEO))
    token = torch.randn(2, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ptr = model.object_pointer(token, torch.tensor([[0.5], [-0.5]]))
        expected = model.obj_ptr_proj(token[0])
    assert_close(ptr[0], expected, 1e-6, "pointer with the object")
    assert_close(ptr[1], model.no_obj_ptr[0].detach(), 1e-6, "pointer without the object")


@pytest.mark.slow  # the memory encoder on two 1024 x 1024 masks: about 6 s on a busy 2-core machine
def test_no_object_memory(golden):
    """Where the object score is <= 0 the memory gains ``no_obj_embed_spatial``."""
    model = _gating_model(golden(VIDEO))
    feat = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(1)).expand(2, -1, -1, -1)
    logits = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(2)).expand(2, -1, -1, -1)
    with torch.no_grad():  # the same frame, with and without the object
        mem, _ = model.encode_memory(feat, logits, torch.tensor([[0.5], [-0.5]]), binarize=False)
    assert_close(
        mem[1] - mem[0],
        model.no_obj_embed_spatial[0, :, None, None].detach().expand(64, 64, 64),
        1e-5,
        "memory without the object",
    )


@pytest.mark.slow  # builds all four variants (about 390M parameters); 10-20 s
def test_variants_build():
    """The four SAM 2.1 sizes have the published parameter counts (38.9M, 46M, 80.8M, 224.4M)."""
    counts = {}
    for variant in ("hiera_t", "hiera_s", "hiera_b+", "hiera_l"):
        model = build("sam2:SAM2", variant=variant)
        counts[variant] = sum(p.numel() for p in model.parameters())
        del model
    assert counts == {"hiera_t": 38_962_498, "hiera_s": 46_060_354, "hiera_b+": 80_850_178, "hiera_l": 224_446_642}
    with pytest.raises(ValueError, match="unknown SAM 2.1 variant"):
        build("sam2:SAM2", variant="hiera_xl")
