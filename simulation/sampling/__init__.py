"""Enhanced sampling: collective variables, umbrella sampling with MBAR/WHAM, metadynamics."""

from mlipserve.simulation.sampling.bias import BiasedProvider, HarmonicRestraint, SamplingMD
from mlipserve.simulation.sampling.cvs import (
    CV,
    Angle,
    Coordination,
    Dihedral,
    Distance,
    PathCV,
    Position,
)
from mlipserve.simulation.sampling.free_energy import (
    FreeEnergyProfile,
    mbar_profile,
    plot_profiles,
    wham_profile,
)
from mlipserve.simulation.sampling.metadynamics import (
    MetadynamicsResult,
    WellTemperedMetadynamics,
    run_metadynamics,
)
from mlipserve.simulation.sampling.umbrella import UmbrellaResult, run_umbrella, starts_along_path

__all__ = [
    "CV",
    "Angle",
    "BiasedProvider",
    "Coordination",
    "Dihedral",
    "Distance",
    "FreeEnergyProfile",
    "HarmonicRestraint",
    "MetadynamicsResult",
    "PathCV",
    "Position",
    "SamplingMD",
    "UmbrellaResult",
    "WellTemperedMetadynamics",
    "mbar_profile",
    "plot_profiles",
    "run_metadynamics",
    "run_umbrella",
    "starts_along_path",
    "wham_profile",
]
