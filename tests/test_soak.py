"""`vj bench --soak`: the mechanics of the soak itself, in a short run. Its figures (gaps,
memory) are a benchmark's, reported, not asserted here; what must hold whatever the machine
is that the engine survived the faults and nothing the user made was lost."""
import json

from conftest import run_vj


def test_a_short_soak_injects_faults_and_loses_nothing(tmp_path):
    out = tmp_path / "soak.json"
    p = run_vj("bench", "--soak", "0.25", "--soak-dir", tmp_path / "work", "--soak-seed", "3", "--json", out,
               check=False, timeout=300)
    assert p.returncode in (0, 1), p.stderr[-3000:]  # 1: a timing goal missed on a busy machine
    report = json.loads(out.read_text())
    assert report["engine_alive_at_end"] and report["engine_exit_code"] == 0, p.stdout + p.stderr[-2000:]
    assert report["frames"] > 100
    assert sum(report["faults"].values()) >= 8 and len(report["faults"]) >= 4
    assert report["lost_bindings"] == [] and report["lost_takes"] == []
    assert report["user_comment_kept"]
    assert "frames:" in p.stdout and "goals" not in p.stdout  # the printed report
    for goal in ("no gap over 1 s", "no lost mappings or recordings"):
        assert goal in p.stdout
