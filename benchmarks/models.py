"""Parameter lists of ViT-B/16, ResNet-50 and GPT-2 small, written by hand.

Each leaf is ``(path, role, torch_shape)``; the role says which torch default
initializer the module constructor applies (nn.Linear/nn.Conv2d weight:
kaiming_uniform_(a=sqrt(5)), bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in));
LayerNorm/BatchNorm: ones/zeros; nn.Embedding: N(0, 1); ViT tokens as
torchvision: class token zeros, position embedding N(0, 0.02^2)).
"""

import math

Leaf = tuple[str, str, tuple[int, ...]]


def _linear(prefix: str, fan_in: int, fan_out: int, bias: bool = True) -> list[Leaf]:
    leaves = [(f"{prefix}/kernel", "weight", (fan_out, fan_in))]
    if bias:
        leaves.append((f"{prefix}/bias", f"bias:{fan_in}", (fan_out,)))
    return leaves


def _conv(prefix: str, cin: int, cout: int, k: int, bias: bool = True) -> list[Leaf]:
    leaves = [(f"{prefix}/kernel", "weight", (cout, cin, k, k))]
    if bias:
        leaves.append((f"{prefix}/bias", f"bias:{cin * k * k}", (cout,)))
    return leaves


def _norm(prefix: str, width: int) -> list[Leaf]:
    return [
        (f"{prefix}/scale", "ones", (width,)),
        (f"{prefix}/bias", "zeros", (width,)),
    ]


def vit_b16() -> list[Leaf]:
    d, mlp = 768, 3072
    leaves = _conv("patch_embed", 3, d, 16)
    leaves += [("cls_token", "zeros", (1, 1, d)), ("pos_embed", "pos", (1, 197, d))]
    for i in range(12):
        b = f"blocks/{i}"
        leaves += _norm(f"{b}/norm1", d) + _linear(f"{b}/attn/qkv", d, 3 * d)
        leaves += _linear(f"{b}/attn/proj", d, d) + _norm(f"{b}/norm2", d)
        leaves += _linear(f"{b}/mlp/fc1", d, mlp) + _linear(f"{b}/mlp/fc2", mlp, d)
    return leaves + _norm("norm", d) + _linear("head", d, 1000)


def resnet50() -> list[Leaf]:
    leaves = _conv("conv1", 3, 64, 7, bias=False) + _norm("bn1", 64)
    cin = 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for j in range(blocks):
            b = f"layer{stage + 1}/{j}"
            leaves += _conv(f"{b}/conv1", cin, width, 1, bias=False)
            leaves += _norm(f"{b}/bn1", width)
            leaves += _conv(f"{b}/conv2", width, width, 3, bias=False)
            leaves += _norm(f"{b}/bn2", width)
            leaves += _conv(f"{b}/conv3", width, 4 * width, 1, bias=False)
            leaves += _norm(f"{b}/bn3", 4 * width)
            if j == 0:
                leaves += _conv(f"{b}/downsample", cin, 4 * width, 1, bias=False)
                leaves += _norm(f"{b}/downsample_bn", 4 * width)
            cin = 4 * width
    return leaves + _linear("fc", 2048, 1000)


def gpt2_small() -> list[Leaf]:
    d = 768
    leaves: list[Leaf] = [("wte", "embed", (50257, d)), ("wpe", "embed", (1024, d))]
    for i in range(12):
        b = f"h/{i}"
        leaves += _norm(f"{b}/ln_1", d) + _linear(f"{b}/attn/c_attn", d, 3 * d)
        leaves += _linear(f"{b}/attn/c_proj", d, d) + _norm(f"{b}/ln_2", d)
        leaves += _linear(f"{b}/mlp/c_fc", d, 4 * d)
        leaves += _linear(f"{b}/mlp/c_proj", 4 * d, d)
    return leaves + _norm("ln_f", d)


MODELS = {"ViT-B/16": vit_b16, "ResNet-50": resnet50, "GPT-2 small": gpt2_small}


def param_count(leaves: list[Leaf]) -> int:
    return sum(math.prod(shape) for _, _, shape in leaves)


def flax_shape(torch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """torch (out, in, *k) -> Flax (*k, in, out); vectors and tokens unchanged."""
    if len(torch_shape) < 2 or torch_shape[0] == 1:
        return torch_shape
    return (*torch_shape[2:], torch_shape[1], torch_shape[0])
