"""The whole engine on StyleGAN models: `vj run` with the official-layout fixture files,
and StyleGAN3's input transform driven from a patch."""
import numpy as np
import pytest

from conftest import frame_motion, read_video, run_vj
from official_pickle import fixtures_dir

FIX = fixtures_dir()
pytestmark = pytest.mark.skipif(FIX is None, reason="shared/fixtures not found beside the repo")

PAN = """
def setup(p):
    p.key = p.seed(7)

def frame(p, s):
    # the same latent, the picture slides sideways: only the input transform moves
    return p.controls(z=p.key, transform=p.transform(translate=(0.02 * s.frame, 0.0)))
"""


@pytest.mark.parametrize("name", ["sg2_64_skip", "sg3t_64"])
def test_vj_run_on_stylegan_files(tmp_path, env_no_display, name):
    out = tmp_path / f"{name}.mp4"
    # serial: every recorded frame is a new image, however slow the model is on this CPU (a
    # StyleGAN3 takes ~230 ms here; pipelined, the show would keep 30 fps and repeat images)
    run_vj("run", "patches/drift.py", "--model", FIX / f"{name}.safetensors", "--headless", "--frames", "12",
           "--record", out, "--size", "96x64", "--fps", "30", "--no-pipeline", env=env_no_display)
    frames, _ = read_video(out)
    assert len(frames) == 12 and frame_motion(frames).mean() > 0.05


def test_stylegan3_transform_from_a_patch_pans_the_picture(tmp_path, env_no_display):
    patch = tmp_path / "pan.py"
    patch.write_text(PAN)
    out = tmp_path / "pan.mp4"
    run_vj("run", patch, "--model", FIX / "sg3t_64.safetensors", "--headless", "--frames", "8",
           "--record", out, "--size", "64x64", "--fps", "30", "--no-pipeline", env=env_no_display)
    frames, _ = read_video(out)
    f0, f4 = frames[0].astype(float).mean(2), frames[4].astype(float).mean(2)
    assert frame_motion(frames).mean() > 0.5
    # the content moved horizontally: a small horizontal shift of frame 4 matches frame 0 better than none
    err = {dx: np.abs(np.roll(f4, -dx, axis=1)[:, 8:-8] - f0[:, 8:-8]).mean() for dx in range(-8, 9)}
    assert min(err, key=err.get) != 0
