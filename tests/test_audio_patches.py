"""The audio-reactive example patches: klingemann (kicks move the picture: motion peaks
on the detected kicks, measured in a real render) and chroma_layers (bass chroma on the
coarse layers, treble on the fine ones; one z on a one-layer model); per-layer z."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_synth import SR, chord, hat, kick, place
from conftest import ROOT, frame_motion, read_video, run_vj, write_wav
from engine.generators.base import Generator, ModelInfo
from engine.latent.paths import mix
from engine.patching.loader import PatchHost
from engine.render.gpu import GeneratorRunner
from engine.signals.analyze import read_csv
from engine.signals.bus import SignalBus
from engine.signals.clock import VirtualClock

KICKS = [0.5, 1.0, 1.5, 2.25, 2.75, 3.5, 4.0, 4.6, 5.0, 5.5, 6.25, 7.0, 7.5]


def kicks_over_chords(seconds=8):
    y = np.zeros(seconds * SR, np.float32)
    for i, notes in enumerate([[60, 64, 67], [57, 60, 64], [65, 69, 72], [67, 71, 74]]):
        y[i * 2 * SR:(i + 1) * 2 * SR] += chord(notes, 2.0)
    place(y, KICKS, kick())
    place(y, np.arange(0.25, seconds, 0.5), hat())
    return y


def test_klingemann_render_motion_peaks_on_detected_kicks(tmp_path):
    wav = write_wav(tmp_path / "k.wav", kicks_over_chords(), SR)
    csv, video = tmp_path / "k.csv", tmp_path / "k.mp4"
    run_vj("analyze", wav, "--offline", "--fps", "30", "--out", csv, timeout=180)
    run_vj("render", "--audio", wav, "--patch", "patches/klingemann.py", "--out", video,
           "--size", "96x96", "--fps", "30", "--quiet")
    frames, _ = read_video(video)
    t = read_csv(csv)
    assert len(frames) == len(t["time"])
    kicks = np.flatnonzero(t["kick"])
    assert len(kicks) >= len(KICKS) - 1
    into = np.concatenate([[0.0], frame_motion(frames)])       # change into frame k
    floor = np.median(into)
    peaks = [k for k in range(2, len(into) - 1)
             if into[k] >= into[k - 1] and into[k] >= into[k + 1] and into[k] > 3 * floor]
    hit = [k for k in kicks if any(abs(k - p) <= 1 for p in peaks)]
    true_peaks = [p for p in peaks if any(abs(k - p) <= 1 for k in kicks)]
    print(f"\nklingemann: {len(kicks)} detected kicks, {len(peaks)} motion peaks, "
          f"{len(hit)} kicks with a peak within a frame, {len(true_peaks)} peaks on a kick; "
          f"motion median {floor:.1f}, at kicks {np.median(into[kicks]):.1f}")
    assert len(hit) == len(kicks)
    assert len(true_peaks) == len(peaks)
    onsets = np.flatnonzero(t["onset"])                        # kicks are onsets too
    assert all(any(abs(o - p) <= 1 for o in onsets) for p in peaks)


def fake_info(num_ws):
    return ModelInfo(name="fake", architecture="stylegan2" if num_ws > 1 else "dcgan", resolution=64,
                     z_dim=16, w_dim=16, num_ws=num_ws)


def frames_of(patch, info, chroma_bass, chroma_treble, n=20):
    host = PatchHost(ROOT / "patches" / patch, info)
    host.load()
    assert host.ready, host.last_error
    bus, clock = SignalBus(), VirtualClock(30)
    out = []
    for k in range(n):
        clock.tick()
        b, tr = (chroma_bass, chroma_treble) if k >= n // 2 else (np.eye(12)[0], np.eye(12)[0])
        bus.update({"audio.chroma_bass": b, "audio.chroma_treble": tr, "audio.chroma": b + tr})
        c = host.frame(bus.snapshot(**clock.fields()))
        assert host.last_error is None, host.last_error
        out.append(np.asarray(c.z, dtype=np.float64))
    return out


def test_chroma_layers_bass_moves_coarse_layers_treble_fine():
    info = fake_info(18)
    zs = frames_of("chroma_layers.py", info, np.eye(12)[7], np.eye(12)[0])    # only the bass changes
    assert zs[-1].shape == (18, 16)
    moved = np.linalg.norm(zs[-1] - zs[9], axis=1)
    assert moved[:4].min() > 0.5            # coarse layers follow the bass
    assert moved[8:].max() < 1e-6           # fine layers do not
    zs = frames_of("chroma_layers.py", info, np.eye(12)[0], np.eye(12)[4])    # only the treble changes
    moved = np.linalg.norm(zs[-1] - zs[9], axis=1)
    assert moved[:4].max() < 1e-6 and moved[8:].min() > 0.5


def test_chroma_layers_one_layer_model_blends_into_z():
    zs = frames_of("chroma_layers.py", fake_info(1), np.eye(12)[7], np.eye(12)[4])
    assert zs[-1].shape == (16,)
    assert np.linalg.norm(zs[-1] - zs[9]) > 0.5


@pytest.mark.parametrize("patch", ["klingemann.py", "chroma_layers.py"])
def test_patches_draw_with_the_built_in_model_with_and_without_audio(patch):
    from engine.generators.load import load_generator
    runner = GeneratorRunner(load_generator(None), device="cpu")
    host = PatchHost(ROOT / "patches" / patch, runner.info)
    host.load()
    bus, clock = SignalBus(), VirtualClock(30)
    for k in range(6):
        clock.tick()
        if k == 3:
            bus.update({"audio.chroma": np.eye(12)[2], "audio.chroma_bass": np.eye(12)[2],
                        "audio.chroma_treble": np.eye(12)[9], "audio.harmonic": 0.7})
            bus.emit("audio.kick", 0.9)
        c = host.frame(bus.snapshot(**clock.fields()))
        assert host.last_error is None, host.last_error
        img = runner.image(runner.styles(z=c.z, w=c.w, ws=c.ws, psi=c.psi), c.noise)
        assert img.shape == (runner.info.resolution, runner.info.resolution, 3) and img.std() > 5


class LayerEcho(Generator):
    """mapping(z) gives every layer the z itself scaled by (layer + 1): each layer's
    style says which z it came from."""

    def __init__(self, num_ws=4, dim=3):
        super().__init__()
        self.info = ModelInfo(name="echo", architecture="test", resolution=4, z_dim=dim, w_dim=dim,
                              num_ws=num_ws)

    def mapping(self, z, c=None, psi=1.0, cutoff=None):
        scale = torch.arange(1, self.info.num_ws + 1, dtype=z.dtype)[None, :, None]
        return psi * z[:, None, :] * scale


def test_one_z_per_layer_maps_each_layer_from_its_own_row():
    runner = GeneratorRunner(LayerEcho(), device="cpu")
    z = np.arange(12, dtype=np.float32).reshape(4, 3)
    ws = runner.styles(z=z, per_layer=True).numpy()  # what the engine asks for a patch's 2-D z
    assert ws.shape == (1, 4, 3)
    for i in range(4):
        assert np.allclose(ws[0, i], z[i] * (i + 1))
    one = runner.styles(z=z[1], per_layer=True).numpy()  # one z: every layer from it
    assert np.allclose(one[0, 2], z[1] * 3)


def test_mix_weights_keys_and_keeps_their_length():
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((12, 64)).astype(np.float32)
    w = np.zeros(12)
    w[5] = 1.0
    assert np.allclose(mix(keys, w), keys[5] * np.mean(np.linalg.norm(keys, axis=1)) / np.linalg.norm(keys[5]),
                       atol=1e-5)
    flat = mix(keys, np.zeros(12))                     # silence: the keys' average, on the shell
    assert np.linalg.norm(flat) == pytest.approx(np.mean(np.linalg.norm(keys, axis=1)), rel=1e-4)
    with pytest.raises(ValueError):
        mix(keys, np.ones(5))
