"""One-off: convert the DCGAN DigiFace-1M checkpoint shipped in the PyPI package
``gan-face-generate`` 1.1.1 (``gan_face_generate/weights.tar``, MIT) into the engine's
built-in model ``models/dcgan_digiface64.safetensors`` (fp16, config in metadata).

    pip download --no-deps gan-face-generate==1.1.1 && unzip gan_face_generate-1.1.1-*.whl
    python tools/convert_dcgan_digiface.py gan_face_generate/weights.tar models/dcgan_digiface64.safetensors

Only the tensors are read (``torch.load(weights_only=True)``); none of the package's code is used.
"""
import json
import sys

import torch
from safetensors.torch import save_file

src, dst = sys.argv[1], sys.argv[2]
state = torch.load(src, map_location="cpu", weights_only=True)["netG_state_dict"]
state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()
         if not k.endswith("num_batches_tracked")}
config = {"architecture": "dcgan", "z_dim": 100, "ngf": 64, "resolution": 64, "channels": 3,
          "name": "digiface64", "source": "gan-face-generate 1.1.1 weights.tar (MIT)"}
save_file(state, dst, metadata={"engine.config": json.dumps(config)})
print(f"wrote {dst}: {sum(v.numel() for v in state.values())} parameters")
