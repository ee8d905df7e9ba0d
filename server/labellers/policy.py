"""Which labellers queue jobs may use, and which of their settings a job may choose.

The server's operator decides, never a REST caller (admins included): the policy is a JSON
file in the model store that servers and workers share, ``STORE/_labellers.json``, written
on the server machine with ``mlipserve labellers enable|disable``. Without the file the
built-in, code-free reference methods are enabled (``emt``, ``xtb``, ``pyscf``) with bounded
settings, and no ``ase:<module>.<Class>`` import path is.

An entry gives the labeller's ``fixed`` settings (the operator's: commands, directories,
pseudopotential folders, URLs belong here) and the ``user`` settings a job may set, each
with a type and limits. A string setting must list its choices: a free string could name a
file. Anything else a job sends is refused with a message naming the setting.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

POLICY_FILE = "_labellers.json"  # no model name can collide: model names start alphanumeric
BUILTIN = ("emt", "nacl-rigid-ion", "xtb", "pyscf")
ASE_NAME = re.compile(r"^ase:[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
#: Keys that name a path, a command, a host or a URL: only an operator's `fixed` sets them.
OPERATOR_ONLY = re.compile(
    r"command|directory|dir$|_dir|path|file|url|uri|host|socket|restart|label|txt|log|"
    r"pseudo|profile|exe|binary|script|prefix|env|output|input|module|import|plugin",
    re.IGNORECASE,
)


class PolicyError(ValueError):
    """A labeller setting the policy does not allow (the message names it)."""

    status = 422


class NotEnabled(PolicyError):
    """A labeller the operator did not enable."""

    status = 403


class SettingRule(BaseModel):
    """What a job may put in one setting: a type and limits (choices for strings)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["int", "float", "bool", "str", "vector3"]
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SettingRule:
        if self.type == "str" and not self.choices:
            raise ValueError("a 'str' setting needs its 'choices' (a free string could be a path)")
        if self.type != "str" and self.choices:
            raise ValueError("'choices' are for 'str' settings")
        if self.type in ("int", "float", "vector3") and (self.min is None or self.max is None):
            raise ValueError(f"a {self.type!r} setting needs 'min' and 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is above 'max'")
        return self

    def check(self, key: str, value: Any) -> Any:
        """`value` as the labeller should get it, or PolicyError naming `key`."""
        where = f"params.settings.{key}"
        if self.type == "bool":
            if not isinstance(value, bool):
                raise PolicyError(f"{where} must be true or false, got {value!r}")
            return value
        if self.type == "str":
            lowered = {c.lower(): c for c in self.choices or ()}
            if not isinstance(value, str) or value.lower() not in lowered:
                raise PolicyError(f"{where} must be one of {self.choices}, got {value!r}")
            return lowered[value.lower()]
        if self.type == "vector3":
            if not isinstance(value, (list, tuple)) or len(value) != 3:
                raise PolicyError(f"{where} must be a list of 3 numbers, got {value!r}")
            return [self._number(where, v, float) for v in value]
        return self._number(where, value, int if self.type == "int" else float)

    def _number(self, where: str, value: Any, kind: type) -> int | float:
        ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if not ok or isinstance(value, bool) or not math.isfinite(value):
            raise PolicyError(
                f"{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}"
            )
        if not self.min <= value <= self.max:
            raise PolicyError(f"{where} must be in [{self.min:g}, {self.max:g}], got {value!r}")
        return kind(value)


class SlurmSettings(BaseModel):
    """Run this labeller's calculations as Slurm jobs (through submitit): the operator's choice.

    Other schedulers are not our code: submitit's executors (and, for PBS/LSF, a site's own
    submitit plugin) would go behind the same seam, `mlipserve.server.queue.slurm`.
    """

    model_config = ConfigDict(extra="forbid")

    folder: str = Field(
        "",
        description="Where scripts, results and logs go, on a file system the compute nodes "
        "share (default: STORE/_slurm).",
    )
    partition: str | None = None
    time_min: int = Field(60, ge=1, le=43_200, description="Slurm time limit per job, minutes")
    mem_gb: float | None = Field(None, gt=0, le=4096)
    cpus_per_task: int = Field(1, ge=1, le=1024)
    structures_per_job: int = Field(1, ge=1, le=10_000)
    setup: list[str] = Field(
        default_factory=list, description="shell lines run before the calculation (module load)"
    )
    additional: dict[str, str | int] = Field(
        default_factory=dict, description="other sbatch options, e.g. account, qos, constraint"
    )
    python: str | None = Field(None, description="interpreter on the nodes (default: this one)")
    poll_s: float = Field(2.0, gt=0, le=600)


class LabellerEntry(BaseModel):
    """One enabled labeller: the operator's fixed settings and what a job may set."""

    model_config = ConfigDict(extra="forbid")

    fixed: dict[str, Any] = Field(default_factory=dict)
    user: dict[str, SettingRule] = Field(default_factory=dict)
    max_atoms: int = Field(1000, ge=1, le=1_000_000, description="atoms per structure")
    slurm: SlurmSettings | None = Field(
        None, description="run the calculations as Slurm jobs instead of in the worker"
    )

    @model_validator(mode="after")
    def _operator_keys(self) -> LabellerEntry:
        for key in self.user:
            if OPERATOR_ONLY.search(key):
                raise ValueError(
                    f"setting {key!r} looks like a path, command or URL: only the "
                    f"operator sets it (put it in 'fixed')"
                )
            if key in self.fixed:
                raise ValueError(f"setting {key!r} is both fixed and user-settable")
        return self

    def settings(self, given: dict[str, Any]) -> dict[str, Any]:
        """The fixed settings plus the job's checked ones (PolicyError naming a bad key)."""
        out = dict(self.fixed)
        for key, value in given.items():
            if key in self.fixed:
                raise PolicyError(
                    f"params.settings.{key} is set by the server's operator and "
                    f"cannot be chosen by a job"
                )
            rule = self.user.get(key)
            if rule is None:
                allowed = ", ".join(sorted(self.user)) or "none"
                raise PolicyError(
                    f"params.settings.{key} is not a setting jobs may choose for "
                    f"this labeller (allowed: {allowed})"
                )
            if value is not None:
                out[key] = rule.check(key, value)
        return out


def _num(kind: str, lo: float, hi: float) -> SettingRule:
    return SettingRule(type=kind, min=lo, max=hi)


XC = [
    "HF",
    "LDA",
    "PBE",
    "PBE0",
    "BLYP",
    "BP86",
    "B3LYP",
    "TPSS",
    "TPSSH",
    "SCAN",
    "R2SCAN",
    "M06",
    "M06-2X",
    "wB97X",
]
BASES = [
    "sto-3g",
    "3-21g",
    "6-31g",
    "6-31g*",
    "6-31g**",
    "6-311g**",
    "def2-SVP",
    "def2-SVPD",
    "def2-TZVP",
    "def2-TZVPP",
    "def2-QZVP",
    "cc-pVDZ",
    "cc-pVTZ",
    "aug-cc-pVDZ",
    "aug-cc-pVTZ",
]  # names only: pyscf reads a basis *file* when given a path


def builtin_entries() -> dict[str, LabellerEntry]:
    """The default policy: emt, the NaCl rigid-ion model, xtb and pyscf, every setting bounded."""
    return {
        "emt": LabellerEntry(user={"asap_cutoff": SettingRule(type="bool")}, max_atoms=20_000),
        "nacl-rigid-ion": LabellerEntry(max_atoms=20_000),
        "xtb": LabellerEntry(
            max_atoms=2_000,
            user={
                "method": SettingRule(type="str", choices=["GFN2-xTB", "GFN1-xTB", "IPEA1-xTB"]),
                "charge": _num("int", -20, 20),
                "multiplicity": _num("int", 1, 21),
                "accuracy": _num("float", 1e-4, 100.0),
                "electronic_temperature": _num("float", 0.0, 20_000.0),
                "max_iterations": _num("int", 1, 1_000),
                "electric_field": _num("vector3", -10.0, 10.0),
            },
        ),
        "pyscf": LabellerEntry(
            max_atoms=100,
            user={
                "xc": SettingRule(type="str", choices=XC),
                "basis": SettingRule(type="str", choices=BASES),
                "charge": _num("int", -20, 20),
                "spin": _num("int", 0, 20),
                "conv_tol": _num("float", 1e-12, 1e-3),
                "max_cycle": _num("int", 1, 500),
                "grid_level": _num("int", 0, 9),
                "density_fit": SettingRule(type="bool"),
                "electric_field": _num("vector3", -10.0, 10.0),
            },
        ),
    }


class LabellerPolicy(BaseModel):
    """The operator's list of enabled labellers and the size of a label job."""

    model_config = ConfigDict(extra="forbid")

    labellers: dict[str, LabellerEntry] = Field(default_factory=builtin_entries)
    max_structures: int = Field(1000, ge=1, le=1_000_000, description="structures per job")

    @model_validator(mode="after")
    def _names(self) -> LabellerPolicy:
        for name in self.labellers:
            if name not in BUILTIN and not ASE_NAME.match(name):
                raise ValueError(
                    f"labeller {name!r} is neither one of {BUILTIN} nor 'ase:package.module.Class'"
                )
        return self

    def entry(self, name: Any) -> LabellerEntry:
        """The entry of an enabled labeller, or PolicyError naming `params.labeller`."""
        entry = self.labellers.get(name) if isinstance(name, str) else None
        if entry is None:
            enabled = ", ".join(sorted(self.labellers)) or "none"
            raise NotEnabled(
                f"params.labeller {name!r} is not enabled on this server "
                f"(enabled: {enabled}); the server's operator enables labellers "
                f"with `mlipserve labellers enable`"
            )
        return entry

    def resolve(self, name: Any, settings: Any) -> tuple[LabellerEntry, dict[str, Any]]:
        """The entry and the settings to build labeller `name` with, checked."""
        entry = self.entry(name)
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise PolicyError("params.settings must be an object")
        return entry, entry.settings(settings)

    def make(self, name: str, settings: Any):
        """The labeller, built only from an enabled entry with checked settings."""
        from mlipserve.server.labellers.factory import make_labeller

        _, merged = self.resolve(name, settings)
        return make_labeller(name, **merged)


def policy_path(store_dir: str | Path) -> Path:
    """Where the policy of the servers and workers sharing the model store `store_dir` lives."""
    return Path(store_dir) / POLICY_FILE


def load_policy(store_dir: str | Path | None) -> LabellerPolicy:
    """The policy in `store_dir` (defaults when there is no file); PolicyError when unreadable."""
    if store_dir is None:
        return LabellerPolicy()
    path = policy_path(store_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return LabellerPolicy()
    except OSError as err:
        raise PolicyError(f"cannot read the labeller policy {path}: {err}") from err
    try:
        return LabellerPolicy.model_validate(json.loads(text))
    except (ValueError, ValidationError) as err:
        raise PolicyError(f"the labeller policy {path} is invalid: {err}") from err


def save_policy(store_dir: str | Path, policy: LabellerPolicy) -> Path:
    """Write the policy atomically (operator side); returns its path."""
    path = policy_path(store_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(policy.model_dump(exclude_none=True), indent=2) + "\n")
    os.replace(tmp, path)
    return path
