"""Quantization-aware fine-tuning keeps the model's function and architecture; its weights see int8 rounding."""

import torch

from edgekd.compress.graph import output_layers
from edgekd.compress.qat import QuantizationAwareModel, conv_bn_pairs, fold_bn_scale
from edgekd.models.checkpoint import build_from_spec
from edgekd.models.classifiers import build_classifier
from edgekd.models.detectors import build_detector


def _with_trained_statistics(model):
    """Non-trivial BN statistics, as after training."""
    generator = torch.Generator().manual_seed(0)
    for _, bn in conv_bn_pairs(model):
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator) * 0.1)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
        bn.weight.data.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
    return model.eval()


def test_folding_bn_scales_keeps_outputs():
    model = _with_trained_statistics(build_detector("n", 1, 1, 96))
    x = torch.rand(2, 1, 96, 96)
    before = model(x)
    pairs = conv_bn_pairs(model)
    assert len(pairs) > 5
    for conv, bn in pairs:
        fold_bn_scale(conv, bn)
    torch.testing.assert_close(model(x), before, atol=1e-4, rtol=1e-4)


def test_prepared_model_rounds_weights_and_finishes_as_a_plain_model():
    model = _with_trained_statistics(build_classifier("thesis", 10, 1))
    x = torch.randn(4, 1, 28, 28)
    float_out = model(x)
    prepared = QuantizationAwareModel(model, output_layers(model, x[:1]))
    model.train()
    assert all(not bn.training for bn in prepared.batchnorms)  # BN stays a frozen bias
    conv = prepared.weighted[0]
    levels = conv.weight[0].detach().unique().numel()
    assert levels <= 255  # int8: at most 255 symmetric levels per output channel
    model.eval()
    fake_out = model(x)
    assert torch.nn.functional.cosine_similarity(fake_out.flatten(), float_out.flatten(), dim=0) > 0.95
    loss = fake_out.square().mean()
    loss.backward()  # straight-through gradients reach the float weights
    assert conv.parametrizations.weight.original.grad is not None
    plain = prepared.finish()
    assert not hasattr(plain.stages, "parametrizations") and not any(
        hasattr(m, "activation_fake_quant") for m in plain.modules()
    )
    rebuilt = build_from_spec(plain.spec)
    rebuilt.load_state_dict(plain.state_dict())  # same architecture: the spec still rebuilds it
    torch.testing.assert_close(rebuilt.eval()(x), plain(x))
