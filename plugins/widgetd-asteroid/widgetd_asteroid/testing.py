"""Tiny ConvTasNet and DPRNNTasNet checkpoints in the Hub layout, for tests here and in widgetd's client suites."""

from __future__ import annotations

from pathlib import Path

CARD = "---\nlibrary_name: asteroid\npipeline_tag: audio-to-audio\ntags:\n- audio-source-separation\n---\n"


def tiny_models():
    from asteroid.models import ConvTasNet, DPRNNTasNet

    return {
        "convtasnet": ConvTasNet(
            n_src=2, n_filters=16, kernel_size=16, stride=8, bn_chan=8, hid_chan=8,
            skip_chan=8, n_blocks=2, n_repeats=1, sample_rate=8000,
        ),
        "dprnn": DPRNNTasNet(
            n_src=3, n_filters=16, kernel_size=16, stride=8, bn_chan=8, hid_size=8,
            chunk_size=20, hop_size=10, n_repeats=1, sample_rate=16000,
        ),
    }


def save_checkpoint(model, folder: Path) -> Path:
    """What asteroid uploads to the Hub, with plain strings where it would store TorchVersion objects."""
    import torch

    torch.manual_seed(0)
    package = model.serialize()
    package["infos"] = {"software_versions": {"torch_version": str(torch.__version__)}}
    folder.mkdir(parents=True)
    torch.save(package, folder / "pytorch_model.bin")
    (folder / "README.md").write_text(CARD)
    return folder


def build_models(root: Path) -> dict[str, Path]:
    """Every tiny model, saved under ``root``: {"convtasnet": folder, "dprnn": folder}."""
    import torch

    torch.manual_seed(0)
    return {name: save_checkpoint(model, root / name) for name, model in tiny_models().items()}
