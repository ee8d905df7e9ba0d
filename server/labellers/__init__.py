"""Reference labellers: structures in, labelled structures (energy, forces, stress) out.

``make_labeller("emt" | "xtb" | "pyscf" | "ase:<module>.<Class>", **settings).label(atoms_list)``
returns one `Label` per structure; failed calculations come back as ``Label(ok=False, error=...)``.
"""

from mlipserve.server.labellers.base import Label, LabelFailure, Labeller
from mlipserve.server.labellers.factory import make_labeller

__all__ = ["Label", "LabelFailure", "Labeller", "make_labeller"]
