"""SegFormer (Xie et al. 2021): a Mix Transformer encoder and an all-MLP decoder."""

import keras

from keras_seg.encoders import level_stride, pyramid_channels
from keras_seg.encoders.mit import MIT_ENCODERS, MiTEncoder, check_variant, mit_encoder
from keras_seg.layers.blocks import conv_bn_act
from keras_seg.layers.resize import ResizeLike
from keras_seg.models.segmenter import Segmenter

# The decoder width of the paper (and of the Hugging Face configs) per MiT variant.
DECODER_CHANNELS = {"b0": 256, "b1": 256, "b2": 768, "b3": 768, "b4": 768, "b5": 768}


@keras.saving.register_keras_serializable(package="keras_seg")
class SegFormer(Segmenter):
    """SegFormer: MiT-b0..b5 encoder, all-MLP decoder, class scores at stride 4 resized to the input.

    The decoder, as in the paper and Hugging Face ``SegformerDecodeHead``: each pyramid level
    (strides 4..32) goes through a linear layer to ``decoder_channels``, is upsampled bilinearly
    (``align_corners=False``) to the stride-4 level, the four are concatenated deepest first,
    fused by a 1x1 conv (no bias), BatchNorm and ReLU, then dropout and a 1x1 classifier
    (``head_conv``). The class scores are bilinearly resized to the input's H x W.

    Args:
        num_classes: output channels.
        variant: the MiT encoder built when ``encoder=None``, ``"b0"`` .. ``"b5"``.
        encoder: ``None`` (the ``variant``'s MiT), a name from
            ``keras_seg.encoders.list_encoders()`` (``"mit_b2"``, or a CNN such as
            ``"resnet50"``), or an encoder model. The decoder uses its levels of stride >= 4.
        encoder_weights: ``None``; for a MiT a ``.weights.h5`` file or a Hugging Face backbone
            checkpoint (a local copy of ``nvidia/mit-b0``); for a CNN name ``"imagenet"``. A whole
            pretrained SegFormer: :meth:`from_huggingface`.
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        decoder_channels: the decoder width; ``None``: 256 for MiT b0/b1, 768 for b2..b5 (the
            MiT in use, else ``variant``).
        dropout: before the classifier (0.1 in the paper).
        drop_path_rate: stochastic depth of the MiT's last block, when this model builds the MiT.
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
        upsampling: ``None``: the stride-4 scores are resized to the input (half-pixel bilinear,
            as Hugging Face); ``4``: upsampled x4 with ``align_corners=True`` first, as
            segmentation_models.pytorch's ``Segformer`` head (the two agree in the argmax, not
            to the last digit; ``keras_seg.models.from_smp`` sets it).
    """

    def __init__(
        self,
        num_classes,
        variant="b0",
        encoder=None,
        encoder_weights=None,
        input_shape=(None, None, 3),
        decoder_channels=None,
        dropout=0.1,
        drop_path_rate=0.1,
        activation=None,
        upsampling=None,
        **kwargs,
    ):
        check_variant(variant)
        if upsampling not in (None, 4):
            raise ValueError(f"upsampling={upsampling!r} must be None (resize to the input, as Hugging Face) or 4 "
                             "(segmentation_models.pytorch's Segformer head).")  # fmt: skip
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, activation=activation, variant=variant,
                         decoder_channels=decoder_channels, dropout=dropout, drop_path_rate=drop_path_rate,
                         upsampling=upsampling, **kwargs)  # fmt: skip

    @property
    def from_variant(self):
        """True when the encoder is the ``variant``'s MiT, built by this model (and rebuilt from its config)."""
        return self.builds_own_encoder

    def make_encoder(self, encoder, encoder_weights, input_shape, output_stride, encoder_depth=5, *, variant, drop_path_rate,
                     **options):
        if encoder is None:
            encoder = f"mit_{variant}"
        if isinstance(encoder, str) and encoder in MIT_ENCODERS:  # this model's stochastic depth
            return mit_encoder(encoder, encoder_weights, input_shape[-1], drop_path_rate=drop_path_rate)
        return super().make_encoder(encoder, encoder_weights, input_shape, output_stride, encoder_depth)

    def decoder(self, features, *, num_classes, encoder, variant, decoder_channels, dropout, drop_path_rate,
                upsampling=None):  # fmt: skip
        if decoder_channels is None:
            decoder_channels = DECODER_CHANNELS[encoder.variant if isinstance(encoder, MiTEncoder) else variant]
        decoder_channels = int(decoder_channels)
        x = self._decoder(features, [k for k in pyramid_channels(encoder) if level_stride(k) >= 4], decoder_channels)
        if dropout:
            x = keras.layers.Dropout(dropout, name="decoder_dropout")(x)
        return self.head(x, num_classes, name="head", upsampling=upsampling or 1), {"decoder_channels": decoder_channels}

    @staticmethod
    def _decoder(features, keys, channels):
        """Linear per level, bilinear to the finest level, concatenation deepest first, 1x1 conv-BN-ReLU fuse."""
        finest = features[keys[0]]
        levels = []
        for key in keys:
            y = keras.layers.Dense(channels, name=f"decoder_proj_{key}")(features[key])
            if key != keys[0]:
                y = ResizeLike("bilinear", name=f"decoder_up_{key}")([y, finest])
            levels.append(y)
        x = keras.layers.Concatenate(name="decoder_concat")(levels[::-1])
        return conv_bn_act(x, channels, 1, name="decoder_fuse")

    @classmethod
    def from_huggingface(cls, path, num_classes=None, config=None, **kwargs):
        """A SegFormer with the weights of a Hugging Face ``transformers`` checkpoint; no download, no ``transformers``.

        ``path``: a directory written by ``save_pretrained`` (``config.json`` and
        ``model.safetensors`` or ``pytorch_model.bin``; e.g. a local copy of
        ``nvidia/segformer-b0-finetuned-ade-512-512``), or a ``.safetensors`` / ``.bin`` / ``.pt``
        state dict file. ``config``: a ``SegformerConfig`` dict or ``config.json`` path; by default
        the ``config.json`` beside the weights, else the configuration is read from the tensor
        shapes (hidden sizes, depths, reduction ratios, decoder width, classes; heads and
        strides are MiT's own). Only the MiT b0..b5 configurations are accepted.

        A ``SegformerForSemanticSegmentation`` checkpoint loads whole. ``num_classes``: ``None``
        keeps its classes; another number keeps everything but the 1x1 classifier, which starts
        from random weights (fine-tuning on your classes). A backbone checkpoint
        (``SegformerModel``, or the ImageNet MiT ``nvidia/mit-b0`` .. ``b5`` without its
        ImageNet classifier) loads into the encoder; the decoder starts from random weights and
        ``num_classes`` is required. ``kwargs`` go to the constructor (``input_shape``,
        ``activation``, ``dropout``, ...; dropout and drop path default to the checkpoint's).
        """
        from keras_seg.convert import huggingface

        checkpoint = huggingface.read_checkpoint(path, config)
        spec = huggingface.segformer_config(checkpoint)
        if num_classes is None:
            if not spec["has_decoder"]:
                raise ValueError(
                    f"{checkpoint['path']} is a backbone checkpoint (no decode head): pass num_classes= for the "
                    "new decoder, e.g. SegFormer.from_huggingface(path, num_classes=21)."
                )
            num_classes = spec["num_labels"]
        kwargs.setdefault("input_shape", (None, None, spec["in_channels"]))
        kwargs.setdefault("dropout", spec["dropout"])
        kwargs.setdefault("drop_path_rate", spec["drop_path_rate"])
        if spec["has_decoder"]:
            kwargs.setdefault("decoder_channels", spec["decoder_channels"])
        model = cls(num_classes, variant=spec["variant"], **kwargs)
        if spec["has_decoder"]:
            huggingface.load_segformer(model, checkpoint, load_classifier=num_classes == spec["num_labels"])
        else:
            huggingface.load_encoder(model.encoder, checkpoint)
        return model
