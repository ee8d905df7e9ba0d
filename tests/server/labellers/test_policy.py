"""The operator's labeller policy: defaults, bounded settings, operator-only keys, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.lj import LennardJones
from pydantic import ValidationError

from mlipserve.server.labellers import make_labeller
from mlipserve.server.labellers.policy import (
    LabellerEntry,
    LabellerPolicy,
    PolicyError,
    load_policy,
    policy_path,
)
from tests.cli.test_cli import cli

POPEN = "ase:subprocess.Popen"


def test_factory_refuses_an_import_path_that_is_not_a_calculator(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match="not an ASE calculator class"):
        make_labeller(POPEN, args=["touch", str(marker)])
    assert not marker.exists()


def test_default_policy_enables_builtins_only(tmp_path):
    policy = load_policy(tmp_path)  # no file: the defaults
    assert sorted(policy.labellers) == ["emt", "nacl-rigid-ion", "pyscf", "xtb"]
    with pytest.raises(PolicyError, match=r"params.labeller 'ase:subprocess.Popen' is not enabled"):
        policy.make(POPEN, {"args": ["true"]})
    with pytest.raises(PolicyError, match="not enabled"):
        policy.make("ase:ase.calculators.emt.EMT", {})


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("emt", {"restart": "/etc/passwd"}, "params.settings.restart is not a setting"),
        ("emt", {"directory": "/tmp"}, "params.settings.directory is not a setting"),
        ("pyscf", {"basis": "/tmp/evil.nw"}, "params.settings.basis must be one of"),
        ("pyscf", {"xc": "PBE; import os"}, "params.settings.xc must be one of"),
        ("pyscf", {"max_cycle": 10**9}, r"params.settings.max_cycle must be in \[1, 500\]"),
        ("pyscf", {"grid_level": 3.5}, "params.settings.grid_level must be an integer"),
        ("xtb", {"max_iterations": 0}, "params.settings.max_iterations must be in"),
        ("xtb", {"electric_field": [0, 0, 1e6]}, "params.settings.electric_field must be in"),
        ("xtb", {"method": "GFN3-xTB"}, "params.settings.method must be one of"),
        ("xtb", {"charge": True}, "params.settings.charge must be an integer"),
        ("xtb", "not a dict", "params.settings must be an object"),
    ],
)
def test_builtin_settings_are_bounded(name, settings, message):
    with pytest.raises(PolicyError, match=message):
        LabellerPolicy().resolve(name, settings)


def test_allowed_builtin_settings_pass_and_choices_are_canonical():
    _, merged = LabellerPolicy().resolve("pyscf", {"basis": "DEF2-svp", "max_cycle": 80})
    assert merged == {"basis": "def2-SVP", "max_cycle": 80}


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"user": {"command": {"type": "str", "choices": ["vasp"]}}}, "only the operator"),
        ({"user": {"pseudo_dir": {"type": "str", "choices": ["/x"]}}}, "only the operator"),
        ({"user": {"directory": {"type": "bool"}}}, "only the operator"),
        ({"user": {"xc": {"type": "str"}}}, "needs its 'choices'"),
        ({"user": {"encut": {"type": "float"}}}, "needs 'min' and 'max'"),
        (
            {"fixed": {"xc": "PBE"}, "user": {"xc": {"type": "str", "choices": ["PBE"]}}},
            "both fixed and user-settable",
        ),
    ],
)
def test_operator_entries_cannot_hand_paths_or_free_strings_to_jobs(entry, message):
    with pytest.raises(ValidationError, match=message):
        LabellerEntry.model_validate(entry)


def test_unknown_labeller_names_are_not_valid_policy():
    with pytest.raises(ValidationError, match="neither one of"):
        LabellerPolicy(labellers={"ase:subprocess": LabellerEntry()})


def test_operator_enables_an_import_path_with_the_cli(tmp_path):
    store = tmp_path / "models"
    refused = cli("labellers", "enable", POPEN, "--store", str(store))
    assert refused.returncode == 2 and "not an ASE calculator class" in refused.stdout
    sneaky = cli(
        "labellers",
        "enable",
        "ase:ase.calculators.lj.LennardJones",
        "--store",
        str(store),
        "--user",
        '{"command": {"type": "str", "choices": ["x"]}}',
    )
    assert sneaky.returncode == 2 and "only the operator" in sneaky.stdout
    assert not policy_path(store).exists()
    out = cli(
        "labellers",
        "enable",
        "ase:ase.calculators.lj.LennardJones",
        "--store",
        str(store),
        "--fixed",
        '{"rc": 6.0}',
        "--max-atoms",
        "50",
        "--user",
        '{"sigma": {"type": "float", "min": 1, "max": 4}}',
    )
    assert out.returncode == 0, out.stdout + out.stderr
    policy = load_policy(store)
    assert sorted(policy.labellers) == [
        "ase:ase.calculators.lj.LennardJones",
        "emt",
        "nacl-rigid-ion",
        "pyscf",
        "xtb",
    ]
    atoms = bulk("Cu", cubic=True)
    label = policy.make("ase:ase.calculators.lj.LennardJones", {"sigma": 2.3}).label([atoms])[0]
    atoms.calc = LennardJones(sigma=2.3, rc=6.0)
    assert label.ok and np.isclose(label.results["energy"], atoms.get_potential_energy())
    with pytest.raises(PolicyError, match="params.settings.rc is set by the server's operator"):
        policy.resolve("ase:ase.calculators.lj.LennardJones", {"rc": 100.0})
    with pytest.raises(PolicyError, match="params.settings.epsilon is not a setting"):
        policy.resolve("ase:ase.calculators.lj.LennardJones", {"epsilon": 1.0})
    assert cli("labellers", "disable", "pyscf", "--store", str(store)).returncode == 0
    assert "pyscf" not in json.loads(policy_path(store).read_text())["labellers"]
    listed = cli("labellers", "list", "--store", str(store))
    assert "LennardJones" in listed.stdout and "pyscf" not in listed.stdout


def test_a_broken_policy_file_fails_closed(tmp_path):
    policy_path(tmp_path).write_text('{"labellers": {"ase:os.system": {"user": {}}}, "x": 1}')
    with pytest.raises(PolicyError, match="is invalid"):
        load_policy(tmp_path)


def test_operator_sends_a_labeller_to_slurm_with_the_cli(tmp_path):
    store = tmp_path / "models"
    slurm = '{"partition": "cpu", "time_min": 30, "mem_gb": 4, "structures_per_job": 8}'
    out = cli("labellers", "enable", "emt", "--slurm", slurm, "--store", str(store))
    assert out.returncode == 0, out.stderr + out.stdout
    entry = load_policy(store).labellers["emt"]
    assert entry.slurm is not None and entry.slurm.partition == "cpu"
    assert (entry.slurm.time_min, entry.slurm.mem_gb, entry.slurm.structures_per_job) == (30, 4, 8)
    bad = cli("labellers", "enable", "emt", "--slurm", '{"nodes": 99}', "--store", str(store))
    assert bad.returncode == 2 and "nodes" in bad.stdout and "Traceback" not in bad.stderr
    assert load_policy(store).labellers["emt"].slurm.partition == "cpu"  # unchanged
