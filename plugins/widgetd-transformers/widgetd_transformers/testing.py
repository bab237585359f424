"""Tiny transformers models of real architectures (random weights, real tokenizers and processors), one per task.

For tests, here and in widgetd's client suites: ``build_models(folder)`` returns {name: folder}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


WORDS = (
    "my name is sarah and i live in london paris the cat sat on mat good bad movie where does who "
    "what capital of france a an it was great terrible dog food"
).split()
LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORD_PIECES = (*LETTERS, *(f"##{letter}" for letter in LETTERS))
"""Letters, and letters that continue a word: any lowercase word is then read letter by letter rather than as
one [UNK], so that a tiny model tells words it does not know apart (the zero-shot models' candidates)."""
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
INIT_SCALE = 0.2
"""Random weights ten times the usual scale: at 0.02 a tiny model answers every input alike (scores equal
to 1e-5), and no check of batching, state or labels could see a difference."""


def card(folder: Path, pipeline_tag: str) -> None:
    (folder / "README.md").write_text(f"---\nlibrary_name: transformers\npipeline_tag: {pipeline_tag}\n---\n")


def bert_config(word_pieces: bool = False, **labels):
    from transformers import BertConfig

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *(WORD_PIECES if word_pieces else LETTERS), *".,!?'"]
    config = BertConfig(
        vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=128, initializer_range=INIT_SCALE, **labels,
    )
    return config, vocabulary


def save_bert(
    folder: Path, model_class, pipeline_tag: str, labels: list[str] | None = None, *, word_pieces: bool = False, sharpness: float | None = None
) -> Path:
    """A tiny BERT; ``word_pieces`` reads unknown words letter by letter, ``sharpness`` scales its output layer."""
    import torch
    from transformers import BertTokenizerFast

    torch.manual_seed(0)
    extra = {"id2label": dict(enumerate(labels)), "label2id": {l: i for i, l in enumerate(labels)}} if labels else {}
    config, vocabulary = bert_config(word_pieces, **extra)
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    # The tokenizer claims more than the model's 128 positions, as many Hub repos' tokenizers do.
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), model_max_length=512)
    tokenizer.save_pretrained(str(folder))
    model = model_class(config)
    if sharpness:
        sharpen(getattr(model, "qa_outputs", None) or model.classifier, sharpness)
    model.save_pretrained(str(folder))
    card(folder, pipeline_tag)
    return folder


SHARPNESS = 4.0
QA_SHARPNESS = 3.0
"""Spans scored apart (top scores 0.01 apart and more), each probability still well below one half."""


def sharpen(head, factor: float) -> None:
    """An output layer's weights scaled up, so that its scores spread as a trained model's do: random logits
    all close to 0 give every label, span or object nearly the same probability, and no rule about their
    order or their candidates could fail (the conformance kit refuses a model that flat)."""
    import torch

    with torch.no_grad():
        head.weight.mul_(factor)


AUDIO_LABELS = ["yes", "no", "up", "down", "silence"]


def save_audio_classifier(folder: Path) -> Path:
    """A one-layer wav2vec2 keyword classifier (``Wav2Vec2ForSequenceClassification``, as superb/wav2vec2-base-superb-ks)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True).save_pretrained(str(folder))
    config = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20, conv_dim=(16, 16), conv_stride=(5, 4),
        conv_kernel=(10, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, do_stable_layer_norm=False,
        initializer_range=INIT_SCALE, classifier_proj_size=8, num_labels=len(AUDIO_LABELS),
        id2label=dict(enumerate(AUDIO_LABELS)), label2id={label: index for index, label in enumerate(AUDIO_LABELS)},
    )
    Wav2Vec2ForSequenceClassification(config).save_pretrained(str(folder))
    card(folder, "audio-classification")
    return folder


def save_wav2vec2(folder: Path) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    vocabulary = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}}
    (folder / "vocab.json").write_text(json.dumps(vocabulary))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(str(folder))
    config = Wav2Vec2Config(
        vocab_size=len(vocabulary), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, pad_token_id=0, do_stable_layer_norm=False, initializer_range=INIT_SCALE,
    )
    Wav2Vec2ForCTC(config).save_pretrained(str(folder))
    card(folder, "automatic-speech-recognition")
    return folder


VIT_LABELS = ["plane", "bird", "cat", "dog", "ship", "truck"]


def save_vit(folder: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    labels = VIT_LABELS
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        initializer_range=INIT_SCALE,
        num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
    )
    ViTForImageClassification(config).save_pretrained(str(folder))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    card(folder, "image-classification")
    return folder


def save_clip(folder: Path) -> Path:
    """A two-layer CLIP (32-pixel images in 8-pixel patches) with the tiny WordPiece tokenizer."""
    import torch
    from transformers import BertTokenizerFast, CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    _, vocabulary = bert_config(word_pieces=True)
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), model_max_length=64)
    tokenizer.save_pretrained(str(folder))
    layers = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, initializer_range=INIT_SCALE)
    text = dict(vocab_size=len(vocabulary), max_position_embeddings=64, eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id, **layers)
    config = CLIPConfig(text_config=text, vision_config=dict(image_size=32, patch_size=8, **layers), projection_dim=16)
    CLIPModel(config).save_pretrained(str(folder))
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(str(folder))
    card(folder, "zero-shot-image-classification")
    return folder


DETECTION_LABELS = ["person", "cat", "dog", "car", "plane"]


def save_yolos(folder: Path) -> Path:
    """A two-layer YOLOS (a ViT with detection tokens: no convolutional backbone to build) on 32-pixel images."""
    import torch
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    config = YolosConfig(
        image_size=[32, 32], patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        num_detection_tokens=8, initializer_range=INIT_SCALE, num_labels=len(DETECTION_LABELS),
        id2label=dict(enumerate(DETECTION_LABELS)), label2id={label: index for index, label in enumerate(DETECTION_LABELS)},
    )
    model = YolosForObjectDetection(config)
    with torch.no_grad():  # YOLOS starts its detection tokens and positions at zero: every object would be one
        for start in (model.vit.embeddings.detection_tokens, model.vit.embeddings.position_embeddings):
            start.normal_(0.0, INIT_SCALE)
    sharpen(model.class_labels_classifier.layers[-1], SHARPNESS)  # objects scored apart, so that their order shows
    with torch.no_grad():  # sure of some cats, so that the default threshold (0.5) keeps objects to check
        model.class_labels_classifier.layers[-1].bias[DETECTION_LABELS.index("cat")] = 4.0
    model.save_pretrained(str(folder))
    YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 64}).save_pretrained(str(folder))
    card(folder, "object-detection")
    return folder


def save_tapas(folder: Path) -> Path:
    """A two-layer TAPAS with an aggregation head (NONE, SUM, AVERAGE, COUNT), as WTQ models have."""
    import torch
    from transformers import TapasConfig, TapasForQuestionAnswering, TapasTokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[EMPTY]"]
    table_words = "how many which total sum average population city age 0 1 2 3 4 5 6 7 8 9 , . ?".split()
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys([*specials, *WORDS, *table_words])) + "\n")
    tokenizer = TapasTokenizer(str(folder / "vocab.txt"), model_max_length=512)
    aggregators = ["NONE", "SUM", "AVERAGE", "COUNT"]
    config = TapasConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        initializer_range=INIT_SCALE, num_aggregation_labels=len(aggregators), aggregation_labels=dict(enumerate(aggregators)),
        no_aggregation_label_index=0, use_answer_as_supervision=True, select_one_column=True,
    )
    model = TapasForQuestionAnswering(config)
    with torch.no_grad():  # selects some cells, so that there are coordinates to check
        model.output_bias.fill_(2.0)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    card(folder, "table-question-answering")
    return folder


def save_captioner(folder: Path, bpe: Path) -> Path:
    """A vision encoder-decoder: a two-layer ViT reading 32-pixel images, a one-layer GPT-2 writing."""
    import torch
    from transformers import (
        GPT2Config, GPT2TokenizerFast, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig, VisionEncoderDecoderModel,
    )

    torch.manual_seed(0)
    tokenizer = GPT2TokenizerFast.from_pretrained(str(bpe), bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    encoder = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, initializer_range=INIT_SCALE)
    decoder = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=128, initializer_range=INIT_SCALE,
                         add_cross_attention=True, is_decoder=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id
    model = VisionEncoderDecoderModel(config)
    model.generation_config.decoder_start_token_id = tokenizer.bos_token_id
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    model.generation_config.max_length = 20
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))  # says words, as the tiny BART does
    words = [i for i, token in enumerate(tokens) if token.startswith("Ġ") and token[1:].isalpha()]
    model.generation_config.suppress_tokens = sorted(set(range(len(tokens))) - {*words, tokenizer.eos_token_id})
    folder.mkdir(parents=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    card(folder, "image-to-text")
    return folder


VQA_ANSWERS = ["yes", "no", "red", "green", "blue", "one", "two", "a cat"]


def save_vilt(folder: Path) -> Path:
    """A two-layer ViLT answer classifier reading 32-pixel images and questions of up to 40 tokens."""
    import torch
    from transformers import BertTokenizerFast, ViltConfig, ViltForQuestionAnswering, ViltImageProcessorPil, ViltProcessor

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys([*specials, *WORDS, "colour", "how", "many", "?"])) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), model_max_length=40)
    config = ViltConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=8, max_position_embeddings=40, max_image_length=-1, initializer_range=INIT_SCALE,
        num_labels=len(VQA_ANSWERS), id2label=dict(enumerate(VQA_ANSWERS)), label2id={a: i for i, a in enumerate(VQA_ANSWERS)},
    )
    ViltForQuestionAnswering(config).save_pretrained(str(folder))
    ViltProcessor(image_processor=ViltImageProcessorPil(size={"shortest_edge": 32}, size_divisor=8), tokenizer=tokenizer).save_pretrained(str(folder))
    card(folder, "visual-question-answering")
    return folder


def save_layoutlm(folder: Path) -> Path:
    """A two-layer LayoutLM reading words with their boxes (no image processor: the words come with the request)."""
    import torch
    from transformers import LayoutLMConfig, LayoutLMForQuestionAnswering, LayoutLMTokenizerFast

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    document_words = "invoice number total date due paid acme corp 0 1 2 3 4 5 6 7 8 9 $ : # ?".split()
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys([*specials, *WORDS, *document_words])) + "\n")
    tokenizer = LayoutLMTokenizerFast.from_pretrained(str(folder), model_max_length=512)
    config = LayoutLMConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=512, initializer_range=INIT_SCALE,
    )
    model = LayoutLMForQuestionAnswering(config)
    sharpen(model.qa_outputs, QA_SHARPNESS)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    card(folder, "document-question-answering")
    return folder


def save_clap(folder: Path, bpe: Path) -> Path:
    """A tiny CLAP (a two-stage HTSAT listening to 2 s at 16 kHz, a two-layer RoBERTa reading), fused as
    laion/clap-htsat-fused is."""
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, ClapTextConfig, RobertaTokenizerFast

    torch.manual_seed(0)
    tokenizer = RobertaTokenizerFast.from_pretrained(str(bpe), model_max_length=77)
    text = ClapTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=80, projection_dim=16, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    audio = ClapAudioConfig(
        spec_size=64, patch_size=4, patch_stride=(4, 4), num_mel_bins=16, window_size=4, hidden_size=32, depths=[1, 1],
        num_attention_heads=[1, 1], patch_embeds_hidden_size=16, projection_dim=16, enable_fusion=True,
    )
    folder.mkdir(parents=True)
    ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)).save_pretrained(str(folder))
    features = ClapFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, max_length_s=2, fft_window_size=400)
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(str(folder))
    card(folder, "zero-shot-audio-classification")
    return folder


def save_dpt(folder: Path) -> Path:
    """A four-layer DPT (a ViT with its reassembling neck and depth head) on 32-pixel images."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessorPil

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    config = DPTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
        backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, initializer_range=INIT_SCALE,
    )
    DPTForDepthEstimation(config).save_pretrained(str(folder))
    DPTImageProcessorPil(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(str(folder))
    card(folder, "depth-estimation")
    return folder


def save_swin2sr(folder: Path) -> Path:
    """A two-stage Swin2SR doubling an image's size (pixel shuffle), padding to windows of 4."""
    import torch
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessorPil

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    config = Swin2SRConfig(
        image_size=32, patch_size=1, embed_dim=16, depths=[1, 1], num_heads=[1, 1], window_size=4, upscale=2,
        upsampler="pixelshuffle", img_range=1.0,
    )
    Swin2SRForImageSuperResolution(config).save_pretrained(str(folder))
    Swin2SRImageProcessorPil(pad_size=4).save_pretrained(str(folder))
    card(folder, "image-to-image")
    return folder


def save_blip_vqa(folder: Path) -> Path:
    """A one-layer BLIP answer generator (ViT reading 32-pixel images, BERT text encoder and decoder)."""
    import torch
    from transformers import (
        BertTokenizerFast, BlipConfig, BlipForQuestionAnswering, BlipImageProcessorPil, BlipProcessor, BlipTextConfig, BlipVisionConfig,
    )

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys([*specials, *WORDS, *VQA_ANSWERS[:7], "colour", "?"])) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), model_max_length=40, bos_token="[DEC]")
    text = BlipTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, encoder_hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=40, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, sep_token_id=tokenizer.sep_token_id, eos_token_id=tokenizer.sep_token_id,
        initializer_range=INIT_SCALE,
    )
    vision = BlipVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8, initializer_range=INIT_SCALE)
    model = BlipForQuestionAnswering(BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16))
    with torch.no_grad():  # answers end after a word or a few, as real ones do
        model.text_decoder.cls.predictions.bias[tokenizer.sep_token_id] = 2.0
    model.save_pretrained(str(folder))
    BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tokenizer).save_pretrained(str(folder))
    card(folder, "visual-question-answering")
    return folder


SEGMENT_LABELS = ["sky", "plane", "grass", "road"]


def save_mask2former(folder: Path) -> Path:
    """A one-block Mask2Former on a tiny Swin (no timm needed): panoptic, instance and semantic segmentation.
    Its images are 64 pixels at least: smaller, the last stage is one pixel, which its group norm refuses."""
    import torch
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil, SwinConfig

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    backbone = SwinConfig(
        image_size=32, patch_size=4, embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=2,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = Mask2FormerConfig(
        backbone_config=backbone, use_pretrained_backbone=False, feature_size=32, mask_feature_size=32, hidden_dim=32,
        encoder_feedforward_dim=32, dim_feedforward=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
        num_queries=5, init_std=INIT_SCALE, num_labels=len(SEGMENT_LABELS), id2label=dict(enumerate(SEGMENT_LABELS)),
        label2id={label: index for index, label in enumerate(SEGMENT_LABELS)},
    )
    model = Mask2FormerForUniversalSegmentation(config)
    with torch.no_grad():  # sure of some planes, so that the default threshold (0.9) keeps segments to check
        model.class_predictor.bias[SEGMENT_LABELS.index("plane")] = 8.0
    model.save_pretrained(str(folder))
    Mask2FormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32).save_pretrained(str(folder))
    card(folder, "image-segmentation")
    return folder


def save_byte_level_bpe(folder: Path) -> Path:
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator([" ".join(WORDS)] * 10, vocab_size=300, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    folder.mkdir(parents=True)
    trainer.save_model(str(folder))
    return folder


def save_bart(folder: Path, pipeline_tag: str, bpe: Path) -> Path:
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizerFast

    torch.manual_seed(0)
    tokenizer = BartTokenizerFast.from_pretrained(str(bpe), model_max_length=512)
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=512, init_std=INIT_SCALE,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id, forced_bos_token_id=None, forced_eos_token_id=tokenizer.eos_token_id,
    )
    folder.mkdir(parents=True)
    model = BartForConditionalGeneration(config)
    # Random weights end most texts at once, or babble single bytes; a model that says words lets
    # length limits and prefixes be seen.
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    model.final_logits_bias[0, [i for i, token in enumerate(tokens) if not token.lstrip("Ġ")[1:].isalpha()]] = -1e4
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    card(folder, pipeline_tag)
    return folder


def save_gpt2(folder: Path, bpe: Path) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    torch.manual_seed(0)
    tokenizer = GPT2TokenizerFast.from_pretrained(str(bpe), bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=512, initializer_range=INIT_SCALE,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder.mkdir(parents=True)
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    card(folder, "text-generation")
    return folder


CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOOLS_TEMPLATE = (
    # Qwen 2.5's way, cut short: the tools in a system message, calls as <tool_call> JSON, answers as <tool_response>.
    "{% if tools %}<|im_start|>system\n{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n{% endif %}"
    "# Tools\n\nYou may call functions. Their signatures are within <tools></tools>:\n<tools>"
    "{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n\nCall each within <tool_call></tool_call>:\n"
    "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
    "{% elif messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% elif message['role'] == 'assistant' and message.get('tool_calls') %}<|im_start|>assistant\n{{ message['content'] or '' }}"
    "{% for call in message['tool_calls'] %}\n<tool_call>\n{\"name\": \"{{ call['function']['name'] }}\", \"arguments\": "
    "{{ call['function']['arguments'] | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% elif message['role'] == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message['content'] }}\n</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML that shows the model tools (without them, the same prompt as ``CHATML_TEMPLATE``)."""


def save_chat_llama(folder: Path, bpe: Path, chat_template: str | None = TOOLS_TEMPLATE) -> Path:
    """A two-layer Llama with a ChatML template that shows it tools (Qwen's and many others'), whose answers are words."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    bpe_tokenizer = ByteLevelBPETokenizer(str(bpe / "vocab.json"), str(bpe / "merges.txt"))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe_tokenizer, bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>", pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"], model_max_length=512,
    )
    tokenizer.add_special_tokens({"eos_token": "<|im_end|>", "additional_special_tokens": ["<|im_start|>"]})
    if chat_template:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, initializer_range=INIT_SCALE,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    folder.mkdir(parents=True)
    model = LlamaForCausalLM(config)
    # Random weights babble bytes; a model that says words lets streamed pieces, stops and lengths be seen.
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    with torch.no_grad():
        for index, token in enumerate(tokens):
            if not token.lstrip("Ġ")[1:].isalpha():
                model.lm_head.weight[index] = 0.0
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    card(folder, "text-generation")
    return folder


def save_qwen2(folder: Path, chat_model: Path, sliding: bool) -> Path:
    """A two-layer Qwen2 with the tiny chat model's tokenizer; with ``sliding``, its layers attend to a
    window of 8 tokens (a cache rows cannot share padded)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.2, use_sliding_window=sliding,
        sliding_window=8 if sliding else None, max_window_layers=0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_vits(folder: Path) -> Path:
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    vocabulary = {c: i for i, c in enumerate(["<pad>", *" abcdefghijklmnopqrstuvwxyz'.,!?"])}
    (folder / "vocab.json").write_text(json.dumps(vocabulary))
    VitsTokenizer(str(folder / "vocab.json"), pad_token="<pad>", unk_token="<pad>", add_blank=False, phonemize=False).save_pretrained(str(folder))
    config = VitsConfig(
        vocab_size=len(vocabulary), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32, flow_size=16,
        spectrogram_bins=33, upsample_initial_channel=16, upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1, posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16, depth_separable_num_layers=1, sampling_rate=16000,
    )
    VitsModel(config).save_pretrained(str(folder))
    card(folder, "text-to-speech")
    return folder


def _builders(root: Path) -> dict[str, tuple[str, Callable[[], Path]]]:
    """Each tiny model's name, task and how to build it under ``root``."""
    from transformers import (
        BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification, BertModel,
    )

    def bpe() -> Path:
        folder = root / "bpe"
        return folder if folder.exists() else save_byte_level_bpe(folder)

    return {
        "tiny-qa": ("question-answering", lambda: save_bert(root / "tiny-qa", BertForQuestionAnswering, "question-answering", word_pieces=True, sharpness=QA_SHARPNESS)),
        "tiny-ner": ("token-classification", lambda: save_bert(root / "tiny-ner", BertForTokenClassification, "token-classification", NER_LABELS)),
        "tiny-sentiment": ("text-classification", lambda: save_bert(root / "tiny-sentiment", BertForSequenceClassification, "text-classification", ["NEGATIVE", "POSITIVE"])),
        "tiny-nli": ("zero-shot-classification", lambda: save_bert(root / "tiny-nli", BertForSequenceClassification, "zero-shot-classification", ["entailment", "neutral", "contradiction"], word_pieces=True, sharpness=SHARPNESS)),
        "tiny-mlm": ("fill-mask", lambda: save_bert(root / "tiny-mlm", BertForMaskedLM, "fill-mask")),
        "tiny-embedder": ("feature-extraction", lambda: save_bert(root / "tiny-embedder", BertModel, "feature-extraction")),
        "tiny-asr": ("automatic-speech-recognition", lambda: save_wav2vec2(root / "tiny-asr")),
        "tiny-keywords": ("audio-classification", lambda: save_audio_classifier(root / "tiny-keywords")),
        "tiny-vit": ("image-classification", lambda: save_vit(root / "tiny-vit")),
        "tiny-clip": ("zero-shot-image-classification", lambda: save_clip(root / "tiny-clip")),
        "tiny-detector": ("object-detection", lambda: save_yolos(root / "tiny-detector")),
        "tiny-segmenter": ("image-segmentation", lambda: save_mask2former(root / "tiny-segmenter")),
        "tiny-tapas": ("table-question-answering", lambda: save_tapas(root / "tiny-tapas")),
        "tiny-captioner": ("image-to-text", lambda: save_captioner(root / "tiny-captioner", bpe())),
        "tiny-vilt": ("visual-question-answering", lambda: save_vilt(root / "tiny-vilt")),
        "tiny-layoutlm": ("document-question-answering", lambda: save_layoutlm(root / "tiny-layoutlm")),
        "tiny-clap": ("zero-shot-audio-classification", lambda: save_clap(root / "tiny-clap", bpe())),
        "tiny-depth": ("depth-estimation", lambda: save_dpt(root / "tiny-depth")),
        "tiny-upscaler": ("image-to-image", lambda: save_swin2sr(root / "tiny-upscaler")),
        "tiny-summarizer": ("summarization", lambda: save_bart(root / "tiny-summarizer", "summarization", bpe())),
        "tiny-translator": ("translation", lambda: save_bart(root / "tiny-translator", "translation", bpe())),
        "tiny-gpt2": ("text-generation", lambda: save_gpt2(root / "tiny-gpt2", bpe())),
        "tiny-chat": ("chat-completion", lambda: save_chat_llama(root / "tiny-chat", bpe())),
        "tiny-tts": ("text-to-speech", lambda: save_vits(root / "tiny-tts")),
    }


def build_models(root: Path) -> dict[str, Path]:
    """Every tiny model, saved under ``root``, by name."""
    return {name: build() for name, (_, build) in _builders(root).items()}


def build_model(task: str, root: Path) -> Path:
    """The tiny model for ``task``, saved under ``root``."""
    builds = {served: build for served, build in _builders(root).values()}
    if task not in builds:
        raise ValueError(f"no tiny transformers model for {task!r}; there is one for: {', '.join(sorted(builds))}")
    return builds[task]()
