"""A tiny Stable Diffusion pipeline with random weights (UNet, VAE, CLIP text encoder, tokenizer, scheduler),
built offline and saved with ``save_pretrained``, for tests here and in widgetd's client suites."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

CARD = "---\nlibrary_name: diffusers\npipeline_tag: text-to-image\n---\nA tiny Stable Diffusion pipeline with random weights, for tests.\n"
WORDS = ["a", "an", "the", "cat", "dog", "red", "blue", "green", "square", "circle", "sky", "sea", "on", "in", "photo", "of", "painting", "astronaut", "horse", "moon"]


def write_tokenizer(folder: Path) -> None:
    """A CLIP tokenizer whose vocabulary is whole words and single letters (no merges)."""
    from transformers import CLIPTokenizer

    letters = [chr(code) for code in range(ord("a"), ord("z") + 1)] + [str(digit) for digit in range(10)]
    pieces = ["<|startoftext|>", "<|endoftext|>", "!", "<unk>", *letters, *(f"{letter}</w>" for letter in letters), *(f"{word}</w>" for word in WORDS)]
    vocabulary = {piece: index for index, piece in enumerate(dict.fromkeys(pieces))}
    source = folder / "source"
    source.mkdir(parents=True)
    (source / "vocab.json").write_text(json.dumps(vocabulary))
    (source / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(source / "vocab.json"), str(source / "merges.txt"), model_max_length=16, unk_token="<unk>")
    tokenizer.save_pretrained(folder / "tokenizer")
    return tokenizer


def build_pipeline(folder: Path, sample_size: int = 8) -> Path:
    """The pipeline saved in ``folder`` (its model id: the folder's name), making ``sample_size * 8``-pixel images by default (64 x 64)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = write_tokenizer(Path(scratch))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=sample_size, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipeline = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    (folder / "README.md").write_text(CARD)
    return folder
