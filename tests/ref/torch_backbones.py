"""Reference backbones for the ImageNet-import test: torchvision's resnet50
and densenet121 and timm's inception_v4, randomly initialised (no download)
with batch-norm statistics drawn away from identity, in eval mode. Writes,
per backbone, its state dict as .pth (torch.save) and .safetensors, a batch
of two inputs and the model's logits (raw little-endian f32), plus two
variants that real checkpoints come in: a wrapped DataParallel .pth and a
DenseNet with the early torchvision `norm.1` names.

usage: torch_backbones.py OUT_DIR
"""
import sys

import timm
import torch
import torchvision
from safetensors.torch import save_file

out = sys.argv[1]
torch.manual_seed(0)


def randomize_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)


models = {
    "resnet50": (torchvision.models.resnet50(weights=None), 224),
    "densenet121": (torchvision.models.densenet121(weights=None), 224),
    "inception_v4": (timm.create_model("inception_v4", pretrained=False), 299),
}
for name, (model, size) in models.items():
    randomize_bn(model)
    model.eval()
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        y = model(x)
    sd = model.state_dict()
    torch.save(sd, f"{out}/{name}.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, f"{out}/{name}.safetensors")
    x.numpy().astype("<f4").tofile(f"{out}/{name}.input.f32")
    y.numpy().astype("<f4").tofile(f"{out}/{name}.logits.f32")
    print(name, tuple(y.shape), float(y.abs().max()))

sd = models["resnet50"][0].state_dict()
torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}},
           f"{out}/resnet50_wrapped.pth")
sd = models["densenet121"][0].state_dict()
old = {}
for k, v in sd.items():
    for a, b in [("norm1", "norm.1"), ("norm2", "norm.2"), ("conv1", "conv.1"), ("conv2", "conv.2")]:
        if ".denselayer" in k:
            k = k.replace(f".{a}.", f".{b}.")
    old[k] = v.contiguous()
save_file(old, f"{out}/densenet121_old_names.safetensors")
